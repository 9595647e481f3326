"""``manage.py parselog_diff A B``: compare two runs' logs, as the admin's compare page does."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from celery_parselog.compare import DIFF_MAX_LINES, Comparison, SummaryRow, compare_runs
from celery_parselog.kinds import KindRow, KindSummary
from celery_parselog.management.lookup import latest_two_of_subject, run_of
from celery_parselog.models import TaskLog


class Command(BaseCommand):
    help = (
        "Compare two runs: a summary side by side (state, duration, size, counts by level "
        "and by logger) and a diff of their logs with times, ids, durations and memory "
        "addresses normalized. With --summary, a table of the kinds of message (lines "
        "grouped by template) with their counts in A and B comes first. Give two task "
        "ids (their last attempts unless "
        "--attempt-a/--attempt-b say otherwise), or --subject for its two latest runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("task_ids", nargs="*", metavar="TASK_ID", help="Runs A and B.")
        parser.add_argument("--subject", help="Compare the two latest runs of this subject.")
        parser.add_argument("--attempt-a", type=int, help="Attempt of run A.")
        parser.add_argument("--attempt-b", type=int, help="Attempt of run B.")
        parser.add_argument(
            "--context", type=int, default=3, help="Unchanged lines around each change."
        )
        parser.add_argument(
            "--max-lines",
            type=int,
            default=DIFF_MAX_LINES,
            help=f"Stop the diff after this many lines (default {DIFF_MAX_LINES}).",
        )
        parser.add_argument(
            "--summary",
            action="store_true",
            help="Print the kinds of message that appeared, disappeared or changed in "
            "number, as the admin's compare page shows them, before the diff.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        a, b = self._runs(options)
        if options["context"] < 0 or options["max_lines"] < 1:
            raise CommandError("--context must be 0 or more and --max-lines at least 1.")
        comparison = compare_runs(
            a, b, context=options["context"], max_diff_lines=options["max_lines"]
        )
        self._write_summary(comparison)
        if options["summary"]:
            self._write_kinds(comparison.kinds)
        for note in comparison.notes:
            self.stdout.write(f"Note: {note}")
        self.stdout.write("")
        if comparison.identical:
            self.stdout.write("The two logs are the same once normalized.")
        for line in comparison.diff:
            self.stdout.write(line)

    @staticmethod
    def _runs(options: dict[str, Any]) -> tuple[TaskLog, TaskLog]:
        task_ids: list[str] = options["task_ids"]
        subject: str | None = options["subject"]
        if subject is not None:
            if task_ids:
                raise CommandError("Give either two task ids or --subject, not both.")
            return latest_two_of_subject(subject)
        if len(task_ids) != 2:
            raise CommandError("Give two task ids to compare, or --subject SUBJECT.")
        return run_of(task_ids[0], options["attempt_a"]), run_of(task_ids[1], options["attempt_b"])

    def _write_summary(self, comparison: Comparison) -> None:
        sections: list[tuple[str, list[SummaryRow]]] = [
            ("", comparison.rows),
            ("Records by level", comparison.level_rows),
            ("Lines by logger", comparison.logger_rows),
        ]
        rows = [row for _, section in sections for row in section]
        label_width = max((len(row.label) for row in rows), default=0)
        a_width = max([len("A"), *(len(row.a) for row in rows)])
        for title, section in sections:
            if title and section:
                self.stdout.write(f"\n{title}")
            for row in section:
                mark = "*" if row.differs else " "
                self.stdout.write(
                    f"{mark} {row.label.ljust(label_width)}  {row.a.ljust(a_width)}  {row.b}"
                )

    def _write_kinds(self, kinds: KindSummary) -> None:
        """The kinds-of-message table: level, change, counts, template and an example."""
        self.stdout.write("\nKinds of message (errors and warnings first)")
        if not kinds.rows:
            self.stdout.write("  No lines read.")
        table = [("Level", "Change", "A", "B", "Template")] + [
            (row.level or "-", _change(row), str(row.a), str(row.b), row.template)
            for row in kinds.rows
        ]
        widths = [max(len(cells[column]) for cells in table) for column in range(4)]
        for number, cells in enumerate(table):
            fixed = "  ".join(
                cell.rjust(width) if column >= 2 else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(cells[:4], widths, strict=True))
            )
            self.stdout.write(f"  {fixed}  {cells[4]}")
            if number:
                self.stdout.write(
                    f"  {'':{sum(widths) + 6}}  e.g. {kinds.rows[number - 1].example}"
                )
        for note in kinds.notes:
            self.stdout.write(f"Note: {note}")


def _change(row: KindRow) -> str:
    return {"new": "new in B", "gone": "gone from B", "same": "same"}.get(
        row.status, f"{row.change:+d}"
    )
