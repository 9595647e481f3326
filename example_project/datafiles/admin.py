"""Admin pages: upload data files, start (re-)parses, and find each run's log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from datafiles.models import DataFile, ParseRun
from datafiles.runs import next_reparse_id, record_outcome, start_parse

# The admin classes are generic only for the type checker; at run time they are not.
if TYPE_CHECKING:
    DataFileAdminBase = admin.ModelAdmin[DataFile]
    ParseRunAdminBase = admin.ModelAdmin[ParseRun]
    ParseRunInlineBase = admin.TabularInline[ParseRun, DataFile]
else:
    DataFileAdminBase = ParseRunAdminBase = admin.ModelAdmin
    ParseRunInlineBase = admin.TabularInline

_RUN_FIELDS = (
    "task_id",
    "reparse_id",
    "state",
    "log_status",
    "log_uri",
    "log_bytes",
    "warnings",
    "errors",
    "submitted_at",
)


class ParseRunInline(ParseRunInlineBase):
    model = ParseRun
    fields = _RUN_FIELDS
    readonly_fields = _RUN_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: DataFile | None = None) -> bool:
        return False


@admin.register(DataFile)
class DataFileAdmin(DataFileAdminBase):
    list_display = ("id", "year", "quarter", "section", "file", "uploaded_at")
    list_filter = ("year", "quarter", "section")
    inlines = (ParseRunInline,)
    actions = ("parse_files",)

    @admin.action(description="Parse the selected files (again)")
    def parse_files(self, request: HttpRequest, queryset: QuerySet[DataFile]) -> None:
        for data_file in queryset:
            start_parse(data_file, reparse_id=next_reparse_id(data_file))
        self.message_user(request, f"Started {queryset.count()} parse runs.", messages.SUCCESS)


@admin.register(ParseRun)
class ParseRunAdmin(ParseRunAdminBase):
    list_display = ("task_id", "data_file", *_RUN_FIELDS[1:])
    list_filter = ("state", "log_status")
    search_fields = ("task_id", "log_key")
    readonly_fields = (
        "task_id",
        "data_file",
        *_RUN_FIELDS[1:],
        "log_storage",
        "log_key",
        "updated_at",
    )
    actions = ("refresh",)

    @admin.action(description="Refresh state and log location from the task result")
    def refresh(self, request: HttpRequest, queryset: QuerySet[ParseRun]) -> None:
        for run in queryset:
            record_outcome(run)
        self.message_user(request, f"Refreshed {queryset.count()} parse runs.", messages.SUCCESS)
