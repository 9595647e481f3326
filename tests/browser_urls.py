"""URLs for the browser test only: the admin, and one-time login links.

A headless browser started from the command line cannot be handed a session cookie,
so the test issues a link that logs one user in once and redirects to the page to
look at. Only the browser test points ROOT_URLCONF here; no other settings use it.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model, login
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, path
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from tests.urls import urlpatterns as admin_urlpatterns

_TOKENS: dict[str, int] = {}


def one_time_login_path(user_pk: int, next_path: str) -> str:
    """A path that logs the user in on its first visit only, then goes to ``next_path``."""
    token = secrets.token_urlsafe(24)
    _TOKENS[token] = user_pk
    return f"/test-login/{token}/?{urlencode({'next': next_path})}"


def _one_time_login(request: HttpRequest, token: str) -> HttpResponseRedirect:
    user_pk = _TOKENS.pop(token, None)
    if user_pk is None:
        raise Http404("unknown or used login link")
    user = get_user_model().objects.get(pk=user_pk)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    target = request.GET.get("next", "/admin/")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/admin/"
    return HttpResponseRedirect(target)


urlpatterns: list[URLPattern | URLResolver] = [
    path("test-login/<str:token>/", _one_time_login),
    *admin_urlpatterns,
]
