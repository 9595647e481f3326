"""The admin pages of ``TaskLog``: runs listed and searched, a run's log previewed and
downloaded, and two runs compared.

Every page and the download need the ``celery_parselog.view_tasklog`` permission
(change permission alone is not enough: logs may hold data that only people allowed
to read them should see). Anonymous users are sent to the login page; staff without
the permission get 403. Rows are written only by the workers, so nobody can add or
change them here; superusers may delete rows, which removes the row only, never the
stored log (``manage.py parselog_purge`` removes both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.files.storage import InvalidStorageError, storages
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode

from celery_parselog.compare import compare_runs
from celery_parselog.conf import ParselogSettings
from celery_parselog.models import TaskLog
from celery_parselog.preview import build_preview
from celery_parselog.reading import LogLocation, human_size
from celery_parselog.storage import _is_s3

__all__ = ["TaskLogAdmin", "previous_run"]

VIEW_PERMISSION = "celery_parselog.view_tasklog"

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[TaskLog]
else:  # ModelAdmin is generic only in django-stubs, not at run time
    _ModelAdmin = admin.ModelAdmin


def previous_run(row: TaskLog) -> TaskLog | None:
    """The run of the same subject that started last before ``row``, if any."""
    if not row.subject:
        return None
    found: TaskLog | None = (
        TaskLog.objects.filter(subject=row.subject, started__lte=row.started)
        .exclude(pk=row.pk)
        .exclude(started=row.started, pk__gt=row.pk)
        .order_by("-started", "-pk")
        .first()
    )
    return found


@admin.register(TaskLog)
class TaskLogAdmin(_ModelAdmin):
    list_display = (
        "started",
        "task_name",
        "subject",
        "attempt",
        "state",
        "upload_status",
        "took",
        "size",
        "task_id",
        "hostname",
    )
    list_filter = ("task_name", "state", "upload_status", "started")
    search_fields = ("task_id", "subject")
    date_hierarchy = "started"
    show_full_result_count = False
    actions = ("compare_selected",)
    fieldsets = (
        (
            "Run",
            {
                "fields": (
                    ("task_name", "attempt"),
                    "task_id",
                    "subject",
                    ("state", "task_state"),
                    ("started", "finished", "took"),
                    "recovered",
                    "hostname",
                )
            },
        ),
        (
            "Log",
            {
                "fields": (
                    ("upload_status", "complete", "incomplete_reason"),
                    "upload_error",
                    ("storage", "key"),
                    "uri",
                    ("bytes", "sha256"),
                    "counts",
                    "first_error",
                )
            },
        ),
        ("Arguments", {"fields": ("args", "kwargs"), "classes": ("collapse",)}),
    )
    readonly_fields = ("took",)

    # -- permissions ---------------------------------------------------------------

    def has_view_permission(self, request: HttpRequest, obj: TaskLog | None = None) -> bool:
        return request.user.has_perm(VIEW_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: TaskLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: TaskLog | None = None) -> bool:
        return bool(request.user.is_superuser)

    def _require_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied

    # -- list ----------------------------------------------------------------------

    @admin.display(description="duration", ordering="duration")
    def took(self, row: TaskLog) -> str:
        seconds = row.duration_seconds
        return f"{seconds:.3f} s" if seconds is not None else "—"

    @admin.display(description="size", ordering="bytes")
    def size(self, row: TaskLog) -> str:
        return human_size(row.bytes) if row.bytes is not None else "—"

    @admin.action(description="Compare the two selected runs", permissions=("view",))
    def compare_selected(
        self, request: HttpRequest, queryset: QuerySet[TaskLog]
    ) -> HttpResponseRedirect | None:
        runs = list(queryset.order_by("started", "pk")[:3])
        if len(runs) != 2:
            self.message_user(
                request, "Select exactly two runs to compare them.", level=messages.WARNING
            )
            return None
        return HttpResponseRedirect(_compare_url(runs[0], runs[1]))

    # -- extra pages ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
            return self.admin_site.admin_view(view)

        own = [
            path("compare/", wrap(self.compare_view), name="celery_parselog_tasklog_compare"),
            path(
                "<path:object_id>/download/",
                wrap(self.download_view),
                name="celery_parselog_tasklog_download",
            ),
        ]
        return own + super().get_urls()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        row = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if row is not None and self.has_view_permission(request, row):
            context.update(self._log_context(row))
        return super().change_view(request, object_id, form_url, context)

    def _log_context(self, row: TaskLog) -> dict[str, Any]:
        lines = ParselogSettings().preview_lines
        context: dict[str, Any] = {"preview_lines": lines}
        if row.is_stored:
            context["download_url"] = reverse(
                "admin:celery_parselog_tasklog_download", args=[row.pk]
            )
            context["preview"] = build_preview(
                LogLocation(row.storage, row.key), lines, size=row.bytes
            )
        previous = previous_run(row)
        if previous is not None:
            context["previous_run"] = previous
            context["compare_previous_url"] = _compare_url(previous, row)
        return context

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """The stored log as it is stored: a presigned S3 link, or streamed through Django."""
        self._require_view(request)
        row = self.get_object(request, unquote(object_id))
        if row is None or not row.is_stored:
            raise Http404("This run has no stored log.")
        try:
            storage = storages[row.storage]
        except InvalidStorageError as error:
            raise Http404(f"The storage {row.storage!r} is not configured here.") from error
        filename = row.key.rsplit("/", 1)[-1]
        if _is_s3(storage) and getattr(storage, "querystring_auth", True):
            if not storage.exists(row.key):
                raise Http404("The log is not in the storage.")
            s3: Any = storage  # S3Storage.url() takes the presigning arguments
            url = s3.url(
                row.key,
                parameters={"ResponseContentDisposition": f'attachment; filename="{filename}"'},
                expire=ParselogSettings().download_expiry,
            )
            return HttpResponseRedirect(url)
        try:
            handle = storage.open(row.key, "rb")
        except FileNotFoundError as error:
            raise Http404("The log is not in the storage.") from error
        return FileResponse(handle, as_attachment=True, filename=filename)

    def compare_view(self, request: HttpRequest) -> HttpResponse:
        """Two runs side by side: ``?a=<pk>&b=<pk>``."""
        self._require_view(request)
        try:
            a_pk, b_pk = int(request.GET["a"]), int(request.GET["b"])
        except (KeyError, ValueError):
            self.message_user(
                request,
                "Choose two runs to compare: select them in the list and use the "
                "“Compare the two selected runs” action.",
                level=messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:celery_parselog_tasklog_changelist"))
        # Through get_queryset and the per-object permission, so a subclass that scopes
        # rows (per state, per region) scopes what can be compared too.
        rows = self.get_queryset(request).in_bulk([a_pk, b_pk])
        if a_pk not in rows or b_pk not in rows:
            raise Http404("No such run.")
        a, b = rows[a_pk], rows[b_pk]
        if not (self.has_view_permission(request, a) and self.has_view_permission(request, b)):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Compare runs",
            "a": a,
            "b": b,
            "comparison": compare_runs(a, b),
            "swap_url": _compare_url(b, a),
        }
        return TemplateResponse(request, "admin/celery_parselog/tasklog/compare.html", context)


def _compare_url(a: TaskLog, b: TaskLog) -> str:
    return (
        reverse("admin:celery_parselog_tasklog_compare") + "?" + urlencode({"a": a.pk, "b": b.pk})
    )
