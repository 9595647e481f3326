"""Kinds of message: every log line grouped into a template, counted in one bounded pass.

The question after a re-parse is which kinds of messages appeared, disappeared or
changed in number. A line's *template* is the line with what varies replaced: the
placeholders of the diff (times, task ids, UUIDs, durations, addresses), then dates
(``<date>``), quoted values (``'<str>'``, ``"<str>"``), numbers (``<num>``) and any
other word holding a digit (``<id>``: ``T2``, ``file7``, hashes). JSON lines are
read as their level, logger and message first, so their keys do not count as values.

**Why these rules and not a template miner such as drain3.** A miner learns its
templates from the order of the lines: the template a line gets depends on the lines
before it, so one message can be grouped differently in A and in B, which is the one
thing a comparison cannot have. Fixed rules give every line the same template in
every log, and a reader can predict it. drain3 also cost about 6 µs a line here
(12 s for two logs of a million lines before reading them), has had no release
since 2022 and pins ``cachetools<5``, which conflicts with current tox. What the
rules miss is variation without digits or quotes (a name written bare); such lines
stay kinds of their own.

**Cost.** Lines are not handled one by one in Python. A chunk of text is turned
into line *shapes* in C (task ids replaced, every digit made ``0``), split, and
counted with ``Counter``; only a shape not seen before is turned into its template
(the rules above, some tens of microseconds). None of the rules reads a digit's
value, so lines of one shape always share a template.

**Bounds.** At most :data:`SHAPES_MAX` shapes and :data:`KINDS_MAX` templates are
kept per log, and shapes are cut at :data:`SHAPE_MAX_BYTES`; memory is therefore
bounded whatever the log holds. Shapes past the first cap are still worked out, but
not remembered, up to :data:`TEMPLATES_WORKED_MAX` per log, which bounds the time.
Lines past the caps are counted as *not grouped*, and the summary says how many.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from celery_parselog.normalizing import BYTE_SHAPES, Normalizer, apply_plan, shape_of

__all__ = [
    "KINDS_MAX",
    "SHAPES_MAX",
    "SHAPE_MAX_BYTES",
    "TEMPLATES_WORKED_MAX",
    "Kind",
    "KindCounter",
    "KindRow",
    "KindSummary",
    "compare_kinds",
    "counted",
    "parse_level_and_logger",
    "template_of",
]

SHAPES_MAX = 20_000
TEMPLATES_WORKED_MAX = 40_000
KINDS_MAX = 1_000
SHAPE_MAX_BYTES = 500
ROWS_SHOWN = 100

_HEADER = re.compile(
    r"^(?:\S+\s+){0,3}?\[?(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?"
    r"\s+\[?(?P<logger>[^\s:\[\]]+)\]?(?::|\s|$)"
)
_TEMPLATE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{4}\b"), "<date>"),
    (re.compile(r"(?<![\w\\])'[^'\n]{0,200}'"), "'<str>'"),
    (re.compile(r'(?<![\w\\])"[^"\n]{0,200}"'), '"<str>"'),
    (re.compile(r"\b\d+(?:[.,]\d+)*\b"), "<num>"),
    (re.compile(r"\w*\d\w*"), "<id>"),
)
_SEVERITY = {"CRITICAL": 0, "FATAL": 0, "ERROR": 0, "WARNING": 1, "WARN": 1}


def parse_level_and_logger(line: str) -> tuple[str, str] | None:
    """The level and logger names a log line starts with, or ``None`` for other lines.

    Understands JSON lines (``level`` and ``logger``) and text lines where the level
    name is followed by the logger name, after at most three leading fields.
    """
    if line.startswith("{"):
        record = _json_record(line)
        if record is not None and isinstance(record.get("logger"), str):
            return str(record.get("level", "")), str(record["logger"])
        return None
    match = _HEADER.match(line)
    if match is None:
        return None
    return match["level"], match["logger"]


def _json_record(line: str) -> dict[str, object] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def template_of(line: str, normalizer: Normalizer | None = None) -> str:
    """The template of one line (see the module's docstring)."""
    normalizer = normalizer or Normalizer()
    line = normalizer.without_task_ids(line)
    return _template(shape_of(line)[:SHAPE_MAX_BYTES], line, normalizer)


def _template(shape: str, example: str, normalizer: Normalizer) -> str:
    if example.startswith("{"):
        record = _json_record(example)
        if record is not None and "message" in record:
            text = f"{record.get('level', '')} {record.get('logger', '')}: {record['message']}"
            if record.get("exc_text"):
                text += " | " + str(record["exc_text"]).splitlines()[-1]
            shape = shape_of(normalizer.without_task_ids(text))[:SHAPE_MAX_BYTES]
    text = apply_plan(shape, normalizer.plan(shape))
    plain = text.isascii()  # then every digit is a 0, and cheap tests can skip rules
    dates, single, double, numbers, ids = _TEMPLATE_RULES
    for (pattern, placeholder), needed in (
        (dates, "0-00-0" in text or "/" in text),
        (single, "'" in text),
        (double, '"' in text),
        (numbers, "0" in text),
    ):
        if needed or not plain:
            text = pattern.sub(placeholder, text)
    if "0" in text or not plain:
        text = ids[0].sub(ids[1], text)
    return text


@dataclass
class Kind:
    """One template of one log: how many lines had it, and the first of them."""

    template: str
    example: str
    level: str
    logger: str
    count: int = 0


@dataclass
class KindCounter:
    """Counts one log's lines by template, fed chunk by chunk (see the module docstring)."""

    normalizer: Normalizer = field(default_factory=Normalizer)
    shapes_max: int = SHAPES_MAX
    worked_max: int = TEMPLATES_WORKED_MAX
    kinds_max: int = KINDS_MAX
    kinds: dict[str, Kind] = field(default_factory=dict)
    lines: int = 0
    not_grouped: int = 0
    shapes_full: bool = False
    worked_full: bool = False
    kinds_full: bool = False
    worked: int = 0
    _shapes: dict[bytes, Kind | None] = field(default_factory=dict)
    _rest: bytes = b""

    def __post_init__(self) -> None:
        self._task_ids = [t.encode() for t in self.normalizer.task_ids]

    def feed(self, chunk: bytes) -> None:
        """Count the whole lines in ``chunk``; a partial last line waits for the next chunk."""
        data = self._rest + chunk if self._rest else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._rest = data[: 64 * 1024] if len(data) > 64 * 1024 else data
            return
        self._rest = data[cut + 1 :]
        self._count(data[:cut])

    def finish(self) -> None:
        """Count the last line when the log does not end with a newline."""
        if self._rest:
            self._count(self._rest)
            self._rest = b""

    def _count(self, text: bytes) -> None:
        shaped = text
        for task_id in self._task_ids:
            shaped = shaped.replace(task_id, b"<task-id>")
        shapes = shaped.translate(BYTE_SHAPES).split(b"\n")
        if max(map(len, shapes)) > SHAPE_MAX_BYTES:
            shapes = [shape[:SHAPE_MAX_BYTES] for shape in shapes]
        self.lines += len(shapes)
        firsts: dict[bytes, bytes] | None = None
        for shape, number in Counter(shapes).items():
            if shape in self._shapes:
                kind = self._shapes[shape]
            else:
                if firsts is None:
                    originals = text.split(b"\n")
                    firsts = dict(zip(reversed(shapes), reversed(originals), strict=True))
                kind = self._new_shape(shape, firsts[shape])
            if kind is None:
                self.not_grouped += number
            else:
                kind.count += number

    def _new_shape(self, shape: bytes, example: bytes) -> Kind | None:
        # Past the cap on remembered shapes, new shapes are still worked out (each is
        # then forgotten) up to a cap on the work, which bounds the time a log takes.
        if self.worked >= self.worked_max:
            self.worked_full = True
            return None
        self.worked += 1
        line = example[:2000].decode("utf-8", "replace")
        shape_text = shape.decode("utf-8", "replace")
        template = _template(shape_text, self.normalizer.without_task_ids(line), self.normalizer)
        kind = self.kinds.get(template)
        if kind is None:
            if len(self.kinds) >= self.kinds_max:
                self.kinds_full = True
            else:
                parsed = parse_level_and_logger(line)
                level, logger = parsed if parsed else ("", "")
                kind = self.kinds[template] = Kind(template, line, level, logger)
        if len(self._shapes) < self.shapes_max:
            self._shapes[shape] = kind
        else:
            self.shapes_full = True
        return kind

    def levels(self) -> dict[str, int]:
        """Lines by level, from the templates (lines without a level are not counted)."""
        counts: Counter[str] = Counter()
        for kind in self.kinds.values():
            if kind.level:
                counts[kind.level] += kind.count
        return dict(counts)

    def loggers(self, *, no_logger: str, not_grouped: str) -> dict[str, int]:
        """Lines by logger, most first."""
        counts: Counter[str] = Counter()
        for kind in self.kinds.values():
            counts[kind.logger or no_logger] += kind.count
        if self.not_grouped:
            counts[not_grouped] += self.not_grouped
        return dict(counts.most_common())

    def why_not_grouped(self) -> str:
        """Why some lines were not grouped, for the summary's notes."""
        reasons = []
        if self.worked_full:
            reasons.append(f"more than {self.worked_max:,} line shapes")
        if self.kinds_full:
            reasons.append(f"more than {self.kinds_max:,} kinds of message")
        return " and ".join(reasons)


@dataclass(frozen=True)
class KindRow:
    """One template in the summary: its counts in A and B, and an example line."""

    template: str
    level: str
    a: int
    b: int
    example: str

    @property
    def status(self) -> str:
        """``new`` (only in B), ``gone`` (only in A), ``changed`` or ``same``."""
        if not self.a:
            return "new"
        if not self.b:
            return "gone"
        return "changed" if self.a != self.b else "same"

    @property
    def change(self) -> int:
        return self.b - self.a

    @property
    def severity(self) -> str:
        """``error``, ``warning`` or an empty string, for the page's highlighting."""
        return {0: "error", 1: "warning"}.get(_SEVERITY.get(self.level.upper(), 2), "")


@dataclass
class KindSummary:
    """The kinds of message of two logs, in the order people read them."""

    rows: list[KindRow]
    hidden: int = 0
    hidden_changed: int = 0
    notes: list[str] = field(default_factory=list)


_STATUS_ORDER = {"new": 0, "gone": 1, "changed": 2, "same": 3}


def _order(row: KindRow) -> tuple[int, int, int, int, str]:
    return (
        _SEVERITY.get(row.level.upper(), 2),
        _STATUS_ORDER[row.status],
        -abs(row.change),
        -(row.a + row.b),
        row.template,
    )


def compare_kinds(
    a: KindCounter | None, b: KindCounter | None, *, rows_shown: int = ROWS_SHOWN
) -> KindSummary:
    """Both logs' templates side by side: ERROR, then WARNING, then the rest; within each,
    new in B, gone from B, then the largest changes in count."""
    a_kinds = a.kinds if a is not None else {}
    b_kinds = b.kinds if b is not None else {}
    rows = []
    for template in a_kinds.keys() | b_kinds.keys():
        in_a, in_b = a_kinds.get(template), b_kinds.get(template)
        example = in_b or in_a
        assert example is not None
        rows.append(
            KindRow(
                template,
                example.level,
                in_a.count if in_a else 0,
                in_b.count if in_b else 0,
                example.example,
            )
        )
    rows.sort(key=_order)
    shown, hidden = rows[:rows_shown], rows[rows_shown:]
    summary = KindSummary(
        shown,
        hidden=len(hidden),
        hidden_changed=sum(1 for row in hidden if row.status != "same"),
    )
    if hidden:
        summary.notes.append(
            f"{len(hidden):,} more kinds of message are not shown "
            f"({summary.hidden_changed:,} of them changed)."
        )
    for label, counter in (("A", a), ("B", b)):
        if counter is not None and counter.not_grouped:
            summary.notes.append(
                f"{label}: {counter.not_grouped:,} of {counter.lines:,} lines are not grouped "
                f"(the log has {counter.why_not_grouped()}); a kind shown as new or gone may "
                "be among them."
            )
    return summary


def counted(lines: Iterable[str], normalizer: Normalizer | None = None) -> KindCounter:
    """A :class:`KindCounter` over ``lines`` (for tests and small inputs)."""
    counter = KindCounter(normalizer or Normalizer())
    for line in lines:
        counter.feed(line.encode() + b"\n")
    counter.finish()
    return counter
