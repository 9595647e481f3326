"""The admin pages of ``TaskLog``: runs listed and searched, a run's log previewed, read
whole and downloaded, two runs compared, and logs whose upload failed stored on demand.

Every page and the download need the ``celery_parselog.view_tasklog`` permission
(change permission alone is not enough: logs may hold data that only people allowed
to read them should see). Anonymous users are sent to the login page; staff without
the permission get 403. Every page that shows a log's content, and every download,
leaves a :class:`~celery_parselog.audit.LogRead`. Rows are written only by the
workers, so nobody can add or change them here; superusers may delete rows, which
removes the row only, never the stored log (``manage.py parselog_purge`` removes both).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import groupby
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from django.apps import apps
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
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from celery_parselog.audit import LogRead, record_read
from celery_parselog.compare import compare_runs
from celery_parselog.conf import ParselogSettings
from celery_parselog.lines import LEVELS, level_number
from celery_parselog.models import TaskLog
from celery_parselog.preview import PAGE_LINES, PreviewLine, build_preview, read_page
from celery_parselog.reading import LogLocation
from celery_parselog.storage import is_s3

__all__ = ["LogReadAdmin", "TaskLogAdmin", "previous_run"]

VIEW_PERMISSION = "celery_parselog.view_tasklog"
_QUERY_MAX = 200

if TYPE_CHECKING:
    from celery_parselog.managers import TaskLogQuerySet

    _ModelAdmin = admin.ModelAdmin[TaskLog]
    _ReadAdmin = admin.ModelAdmin[LogRead]
else:  # ModelAdmin is generic only in django-stubs, not at run time
    _ModelAdmin = _ReadAdmin = admin.ModelAdmin

# Which of the admin's boolean icons a state shows: yes (green), no (red), unknown (grey).
_STATE_ICON = {
    "succeeded": "yes",
    "failed": "no",
    "lost": "no",
    "interrupted": "no",
    "revoked": "no",
    "running": "unknown",
    "retried": "unknown",
    "finished": "unknown",
}
_UPLOAD_ICON = {"stored": "yes", "failed": "no", "pending": "unknown"}


def previous_run(row: TaskLog, among: QuerySet[TaskLog] | None = None) -> TaskLog | None:
    """The run of the same subject that started last before ``row``, if any, looked for
    ``among`` the given rows (an admin's own queryset) or among all of them."""
    rows = TaskLog.objects.all() if among is None else among
    found: TaskLog | None = cast("TaskLogQuerySet", rows).previous_of(row)
    return found


def _icon(icon: str, label: str) -> SafeString:
    return format_html(
        '<span class="parselog-icon parselog-{}"><img src="{}" alt="{}"> {}</span>',
        icon,
        static(f"admin/img/icon-{icon}.svg"),
        icon,
        label,
    )


def _arguments_summary(row: TaskLog) -> str:
    parts = [_short_value(value) for value in (row.args or [])]
    kwargs = row.kwargs if isinstance(row.kwargs, dict) else {}
    parts += [f"{name}={_short_value(value)}" for name, value in kwargs.items()]
    return ", ".join(parts)


def _short_value(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


class _YesNoFilter(admin.SimpleListFilter):
    """A filter of two choices, ``yes`` and ``no``: a subclass labels them and narrows the
    list for either; any other value in the query string leaves the list whole."""

    labels: tuple[tuple[str, str], tuple[str, str]]

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(self.labels)

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[TaskLog]
    ) -> QuerySet[TaskLog] | None:
        if self.value() not in ("yes", "no"):
            return queryset
        return self.narrow(queryset, yes=self.value() == "yes")

    def narrow(self, queryset: QuerySet[TaskLog], *, yes: bool) -> QuerySet[TaskLog]:
        raise NotImplementedError


class HasErrorsFilter(_YesNoFilter):
    """Runs that logged an ERROR or CRITICAL record, or none."""

    title = "errors"
    parameter_name = "errors"
    labels = (("yes", "has errors"), ("no", "no errors"))

    def narrow(self, queryset: QuerySet[TaskLog], *, yes: bool) -> QuerySet[TaskLog]:
        with_errors = TaskLog.objects.with_errors().values("pk")
        narrowed: QuerySet[TaskLog] = (
            queryset.filter(pk__in=with_errors) if yes else queryset.exclude(pk__in=with_errors)
        )
        return narrowed


class IncompleteFilter(_YesNoFilter):
    """Logs that do not reach their run's end (worker lost, run interrupted, disk full)."""

    title = "log complete"
    parameter_name = "complete"
    labels = (("no", "incomplete"), ("yes", "complete"))

    def narrow(self, queryset: QuerySet[TaskLog], *, yes: bool) -> QuerySet[TaskLog]:
        narrowed: QuerySet[TaskLog] = queryset.filter(complete=yes)
        return narrowed


@admin.register(TaskLog)
class TaskLogAdmin(_ModelAdmin):
    list_display = (
        "started_at",
        "task",
        "subject_link",
        "run",
        "state_icon",
        "problems",
        "upload",
        "size",
    )
    list_filter = (
        HasErrorsFilter,
        IncompleteFilter,
        "state",
        "upload_status",
        "task_name",
        "started",
    )
    search_fields = ("task_id", "subject")
    date_hierarchy = "started"
    show_full_result_count = False
    actions = ("compare_selected", "store_now")
    fieldsets = (
        (
            "Run",
            {
                "fields": (
                    ("task_name", "attempt"),
                    "task_id",
                    ("subject", "links"),
                    ("state", "task_state"),
                    ("started", "finished", "took"),
                    "recovered",
                    "deliveries",
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
                    "waiting",
                    ("storage", "key"),
                    "uri",
                    ("size", "sha256"),
                    "records",
                    "first_error",
                )
            },
        ),
        ("Arguments", {"fields": ("args", "kwargs"), "classes": ("collapse",)}),
    )
    readonly_fields = ("took", "size", "records", "links", "waiting", "deliveries")

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

    # -- columns and fields ----------------------------------------------------------

    @admin.display(description="started", ordering="started")
    def started_at(self, row: TaskLog) -> SafeString:
        moment = timezone.localtime(row.started)
        return format_html(
            '<time datetime="{}" title="{}">{}</time>',
            row.started.isoformat(),
            moment.isoformat(timespec="milliseconds"),
            moment.strftime("%Y-%m-%d %H:%M"),
        )

    @admin.display(description="task", ordering="task_name")
    def task(self, row: TaskLog) -> SafeString:
        return format_html(
            '<span title="{}">{}</span>', row.task_name, row.task_name.rsplit(".", 1)[-1]
        )

    @admin.display(description="subject", ordering="subject")
    def subject_link(self, row: TaskLog) -> SafeString | str:
        if not row.subject:
            return "—"
        runs = (
            reverse("admin:celery_parselog_tasklog_changelist")
            + "?"
            + urlencode({"subject": row.subject})
        )
        link = format_html(
            '<a href="{}" title="Every run of {}">{}</a>',
            runs,
            row.subject,
            Truncator(row.subject).chars(24),
        )
        outside = subject_url(row)
        if outside:
            link = format_html(
                '{} <a href="{}" class="parselog-out" title="Open {} in its own admin">↗</a>',
                link,
                outside,
                row.subject,
            )
        return link

    @admin.display(description="attempt · arguments", ordering="attempt")
    def run(self, row: TaskLog) -> SafeString:
        summary = _arguments_summary(row)
        redelivered = (
            format_html(
                ' <span class="parselog-redelivery" title="delivery {}: the message came back '
                'after its worker was lost">↻{}</span>',
                row.delivery,
                row.delivery,
            )
            if row.delivery > 1
            else ""
        )
        return format_html(
            '<span title="{}">#{}{}{}{}</span>',
            summary,
            row.attempt,
            redelivered,
            " · " if summary else "",
            Truncator(summary).chars(36),
        )

    @admin.display(description="deliveries")
    def deliveries(self, row: TaskLog) -> SafeString | str:
        """The other deliveries of this attempt: the run a lost worker left, or its rerun."""
        others = [other for other in TaskLog.objects.deliveries_of(row) if other.pk != row.pk]
        if not others:
            return "—"
        links = format_html_join(
            ", ",
            '<a href="{}">delivery {}</a> ({})',
            (
                (
                    reverse("admin:celery_parselog_tasklog_change", args=[other.pk]),
                    other.delivery,
                    other.get_state_display(),
                )
                for other in others
            ),
        )
        if row.delivery > 1:
            return format_html(
                "delivery {} of this attempt: the message came back after its worker was lost. "
                "Other deliveries: {}",
                row.delivery,
                links,
            )
        return format_html("delivery 1; redelivered after its worker was lost, as {}", links)

    @admin.display(description="state", ordering="state")
    def state_icon(self, row: TaskLog) -> SafeString:
        return _icon(_STATE_ICON.get(row.state, "unknown"), row.get_state_display())

    @admin.display(description="errors / warnings")
    def problems(self, row: TaskLog) -> SafeString:
        counts = row.counts if isinstance(row.counts, dict) else {}
        errors = int(counts.get("ERROR", 0)) + int(counts.get("CRITICAL", 0))
        warnings = int(counts.get("WARNING", 0))
        return format_html(
            '<span class="parselog-count{}" title="{} errors">{}</span> / '
            '<span class="parselog-count{}" title="{} warnings">{}</span>',
            " parselog-has-errors" if errors else "",
            errors,
            errors,
            " parselog-has-warnings" if warnings else "",
            warnings,
            warnings,
        )

    @admin.display(description="upload", ordering="upload_status")
    def upload(self, row: TaskLog) -> SafeString:
        return _icon(_UPLOAD_ICON.get(row.upload_status, "unknown"), row.upload_status)

    @admin.display(description="size", ordering="bytes")
    def size(self, row: TaskLog) -> str:
        return filesizeformat(row.bytes) if row.bytes is not None else "—"

    @admin.display(description="duration", ordering="duration")
    def took(self, row: TaskLog) -> str:
        seconds = row.duration_seconds
        return f"{seconds:.3f} s" if seconds is not None else "—"

    @admin.display(description="records by level")
    def records(self, row: TaskLog) -> str:
        counts = row.counts if isinstance(row.counts, dict) else {}

        def severity(name: str) -> int:
            return -(level_number(name) or 0)

        shown = [
            f"{name} {int(count):,}"
            for name, count in sorted(counts.items(), key=lambda i: (severity(i[0]), i[0]))
        ]
        return " · ".join(shown) or "—"

    @admin.display(description="links")
    def links(self, row: TaskLog) -> SafeString | str:
        found = [(url, label) for url, label in _links_out(row) if url]
        if not found:
            return "—"
        return format_html_join(" · ", '<a href="{}">{}</a>', found)

    @admin.display(description="waiting at")
    def waiting(self, row: TaskLog) -> SafeString | str:
        if row.is_stored:
            return "—"
        try:
            spool = str(ParselogSettings().spool_dir)
        except Exception:  # noqa: BLE001 - a bad setting is reported by the checks
            spool = "(CELERY_PARSELOG_SPOOL_DIR is invalid here)"
        return format_html(
            "host <code>{}</code>, spool folder <code>{}</code>, file <code>{}-{}-….log{}</code>",
            row.hostname or "unknown",
            spool,
            row.task_id,
            row.attempt,
            ".gz" if row.key.endswith(".gz") else "",
        )

    # -- actions -------------------------------------------------------------------

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

    @admin.action(description="Store now (logs whose upload failed)", permissions=("view",))
    def store_now(
        self, request: HttpRequest, queryset: QuerySet[TaskLog]
    ) -> HttpResponseRedirect | None:
        """Ask the worker of each selected run's host to store its waiting logs now."""
        from celery_parselog.control import ask_to_store

        rows = [row for row in queryset.order_by("hostname", "pk") if not row.is_stored]
        if not rows:
            self.message_user(request, "Every selected run's log is stored already.")
            return None
        app = self.celery_app()
        for host, runs in groupby(rows, key=lambda row: row.hostname):
            group = list(runs)
            answer = ask_to_store(app, host, group[0].task_id if len(group) == 1 else "")
            for ok, text in answer.messages():
                self.message_user(request, text, level=messages.SUCCESS if ok else messages.ERROR)
        if len(rows) == 1:
            return HttpResponseRedirect(
                reverse("admin:celery_parselog_tasklog_change", args=[rows[0].pk])
            )
        return None

    def celery_app(self) -> Any:
        """The Celery app whose workers “Store now” asks: the project's current app."""
        from celery import current_app

        return current_app._get_current_object()  # type: ignore[attr-defined]

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
            path("<path:object_id>/log/", wrap(self.log_view), name="celery_parselog_tasklog_log"),
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
            context.update(self._log_context(request, row))
        return super().change_view(request, object_id, form_url, context)

    def _log_context(self, request: HttpRequest, row: TaskLog) -> dict[str, Any]:
        lines = ParselogSettings().preview_lines
        context: dict[str, Any] = {
            "preview_lines": lines,
            "links_out": [(url, label) for url, label in _links_out(row) if url],
            "reads_url": reverse("admin:celery_parselog_logread_changelist")
            + "?"
            + urlencode({"task_log__id__exact": row.pk}),
        }
        if row.is_stored:
            context["download_url"] = reverse(
                "admin:celery_parselog_tasklog_download", args=[row.pk]
            )
            context["log_url"] = reverse("admin:celery_parselog_tasklog_log", args=[row.pk])
            context["log_line_href"] = context["log_url"] + "?start="
            record_read(request, row, "preview")
            context["preview"] = build_preview(
                LogLocation(row.storage, row.key), lines, size=row.bytes
            )
        else:
            context["store_now_url"] = reverse("admin:celery_parselog_tasklog_changelist")
        # Looked for through the admin's own queryset and permission, so a scoped admin
        # never offers a comparison its compare page would refuse.
        previous = previous_run(row, self.get_queryset(request))
        if previous is not None and self.has_view_permission(request, previous):
            context["previous_run"] = previous
            context["compare_previous_url"] = _compare_url(previous, row)
        return context

    def log_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The whole log, a page at a time: ``?start=<line>&level=<name>&q=<text>``."""
        self._require_view(request)
        row = self.get_object(request, unquote(object_id))
        if row is None or not row.is_stored:
            raise Http404("This run has no stored log.")
        try:
            start = max(1, int(request.GET.get("start", "1")))
        except ValueError:
            start = 1
        level_name = request.GET.get("level", "").upper()
        min_level = level_number(level_name) if level_name else None
        query = request.GET.get("q", "")[:_QUERY_MAX]
        detail = f"from line {start}" + (f", {level_name} and above" if min_level else "")
        if query:
            # The words searched for are not kept: they may be the very data to protect.
            detail += ", with a search"
        record_read(request, row, "log", detail)
        page = read_page(
            LogLocation(row.storage, row.key), start=start, min_level=min_level, query=query
        )
        if query:
            page.lines = [
                PreviewLine(line.number, _marked(line.text, query), line.css) for line in page.lines
            ]
        base = {"level": level_name if min_level else "", "q": query}
        base_query = urlencode({name: value for name, value in base.items() if value})

        def page_url(line: int | None) -> str | None:
            if line is None:
                return None
            values = {name: value for name, value in {**base, "start": str(line)}.items() if value}
            return "?" + urlencode(values)

        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": row,
            "title": f"Log of {row}",
            "page": page,
            "page_lines": PAGE_LINES,
            "levels": [name for name in LEVELS if name != "DEBUG"],
            "level": level_name if min_level else "",
            "query": query,
            "first_url": page_url(1) if start > 1 else None,
            "previous_url": page_url(page.previous_start),
            "next_url": page_url(page.next_start),
            "line_href": "?" + (base_query + "&" if base_query else "") + "start=",
            "download_url": reverse("admin:celery_parselog_tasklog_download", args=[row.pk]),
            "change_url": reverse("admin:celery_parselog_tasklog_change", args=[row.pk]),
        }
        return TemplateResponse(request, "admin/celery_parselog/tasklog/log.html", context)

    def download_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """The stored log, saved by a browser as a valid file.

        S3 objects carry ``Content-Encoding: gzip``, which browsers undo as they save,
        so such a log is offered as plain text named ``….log``; a log stored as bytes
        of gzip without that header is offered as ``….log.gz``, as are other storages'
        files, which are streamed through Django as stored.
        """
        self._require_view(request)
        row = self.get_object(request, unquote(object_id))
        if row is None or not row.is_stored:
            raise Http404("This run has no stored log.")
        try:
            storage = storages[row.storage]
        except InvalidStorageError as error:
            raise Http404(f"The storage {row.storage!r} is not configured here.") from error
        filename = row.key.rsplit("/", 1)[-1]
        if is_s3(storage) and getattr(storage, "querystring_auth", True):
            encoding = _s3_content_encoding(storage, row.key)
            record_read(request, row, "download")
            if encoding == "gzip":
                filename = filename.removesuffix(".gz")
                content_type = "text/plain; charset=utf-8"
            else:
                content_type = "application/gzip" if filename.endswith(".gz") else "text/plain"
            s3: Any = storage  # S3Storage.url() takes the presigning arguments
            url = s3.url(
                row.key,
                parameters={
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                    "ResponseContentType": content_type,
                },
                expire=ParselogSettings().download_expiry,
            )
            return HttpResponseRedirect(url)
        try:
            handle = storage.open(row.key, "rb")
        except FileNotFoundError as error:
            raise Http404("The log is not in the storage.") from error
        record_read(request, row, "download")
        response = FileResponse(handle, as_attachment=True, filename=filename)
        if filename.endswith(".gz"):
            # Not "Content-Encoding: gzip", which a browser would undo while saving.
            response["Content-Type"] = "application/gzip"
        return response

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
        record_read(request, a, "compare", f"with run {b.pk}")
        record_read(request, b, "compare", f"with run {a.pk}")
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


@admin.register(LogRead)
class LogReadAdmin(_ReadAdmin):
    """The audit trail: read-only, for anyone allowed to see it."""

    list_display = ("at", "username", "kind", "run", "detail")
    list_filter = ("kind", "at")
    search_fields = ("username", "task_log__task_id", "task_log__subject")
    date_hierarchy = "at"
    list_select_related = ("task_log",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LogRead | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LogRead | None = None) -> bool:
        return False  # entries go with their run's row (parselog_purge), never alone

    @admin.display(description="run", ordering="task_log")
    def run(self, entry: LogRead) -> SafeString:
        row = entry.task_log
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:celery_parselog_tasklog_change", args=[row.pk]),
            f"{row.task_name.rsplit('.', 1)[-1]} {row.subject or row.task_id} #{row.attempt}",
        )


def subject_url(row: TaskLog) -> str | None:
    """Where ``CELERY_PARSELOG_SUBJECT_URL`` links this run's subject, if anywhere."""
    if not row.subject:
        return None
    target = ParselogSettings().subject_url
    if target is None:
        return None
    if callable(target):
        return target(row)
    return target.format(
        subject=quote(row.subject, safe=""), task_id=row.task_id, task_name=row.task_name
    )


def task_result_url(row: TaskLog) -> str | None:
    """The admin page of the run's ``TaskResult`` when django-celery-results is installed."""
    if not apps.is_installed("django_celery_results"):
        return None
    from django_celery_results.models import TaskResult

    found = TaskResult.objects.filter(task_id=row.task_id).values_list("pk", flat=True).first()
    try:
        if found is not None:
            return reverse("admin:django_celery_results_taskresult_change", args=[found])
        return (
            reverse("admin:django_celery_results_taskresult_changelist")
            + "?"
            + urlencode({"q": row.task_id})
        )
    except NoReverseMatch:  # installed, but not in this admin site
        return None


def flower_url(row: TaskLog) -> str | None:
    """The task's page in Flower when ``CELERY_PARSELOG_FLOWER_URL`` is set."""
    base = ParselogSettings().flower_url
    return f"{base}/task/{quote(row.task_id, safe='')}" if base else None


def _links_out(row: TaskLog) -> list[tuple[str | None, str]]:
    return [
        (subject_url(row), f"Subject {row.subject}"),
        (task_result_url(row), "Task result"),
        (flower_url(row), "Flower"),
    ]


def _marked(text: str, query: str) -> str:
    """``text`` escaped, with each case-insensitive occurrence of ``query`` in ``<mark>``."""
    pattern = re.compile(re.escape(query), re.IGNORECASE)
    parts: list[str] = []
    end = 0
    for found in pattern.finditer(text):
        parts.append(escape(text[end : found.start()]))
        parts.append(format_html("<mark>{}</mark>", found.group(0)))
        end = found.end()
    parts.append(escape(text[end:]))
    return mark_safe("".join(parts))


def _s3_content_encoding(storage: Any, key: str) -> str:
    """The object's ``Content-Encoding`` (one HEAD request); a missing object is a 404."""
    from botocore.exceptions import ClientError

    try:
        handle = storage.open(key, "rb")
        encoding = handle.obj.content_encoding
    except (FileNotFoundError, ClientError) as error:
        raise Http404("The log is not in the storage.") from error
    return str(encoding or "").lower()


def _compare_url(a: TaskLog, b: TaskLog) -> str:
    return (
        reverse("admin:celery_parselog_tasklog_compare") + "?" + urlencode({"a": a.pk, "b": b.pk})
    )
