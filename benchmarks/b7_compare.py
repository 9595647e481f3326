"""B7: comparing runs within bounds: the kinds-of-message summary and the whole comparison.

Each measurement runs in a child process of its own with the benchmark project's
settings and ``FileSystemStorage``; the logs are written there first, gzip as the
package stores them, in the default format. Three pairs of logs:

- *summary*: two parse logs of ``b7_summary_lines`` lines each (records, warnings,
  errors with quoted values, progress lines, Celery's trace line; one line in twenty
  carries a fresh UUID), read and summarized as the compare page does
  (:func:`celery_parselog.compare.read_log_text`), beside a plain read of the same
  logs (decompressed and split into lines, nothing else) as the floor;
- *compare*: :func:`compare_runs` on two logs of ``b7_compare_lines`` distinct lines
  each (every line has its own record number and value; B is a re-parse in which one
  line in ten changed or moved);
- *hostile*: the same, but every line has a shape of its own (random words and hex
  values), the worst case for the summary's caches.

The targets are the ones the task set, in seconds on this machine; the ratio to the
plain read says how much of it is reading.
"""

from __future__ import annotations

import gzip
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.context import Context, PartResult, child_entry, run_child
from benchmarks.report import Outcome

__all__ = ["run"]

_SUMMARY_TARGET = 10.0
_COMPARE_TARGET = 5.0
_START = 1_796_000_000.0  # 2026-11-29, as a Unix time
_WORDS = [
    *("amount", "date", "name", "ssn", "county", "status", "code", "value", "field"),
    *("record", "batch", "header", "trailer", "family", "member", "case", "report"),
    *("month", "income", "benefit", "type", "region", "office"),
]


def _stamp(number: int) -> str:
    seconds = _START + number / 1000
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{number % 1000:03d}Z"


def parse_log(lines: int, task_id: str, seed: int) -> str:
    """A parse log of ``lines`` lines shaped like a parser's real messages."""
    rng = random.Random(seed)
    out = [f"{_stamp(0)} INFO datafiles.tasks: parse start file 7 task {task_id}"]
    for number in range(1, lines - 1):
        pick = rng.random()
        stamp = _stamp(number)
        if pick < 0.55:
            out.append(
                f"{stamp} INFO parsers.csv: record {number} of file 7: {rng.randint(1, 10**6)} rows"
            )
        elif pick < 0.70:
            out.append(f"{stamp} INFO root: progress {number} file 7 ({rng.random() * 100:.1f}%)")
        elif pick < 0.80:
            field = rng.choice(_WORDS)
            out.append(
                f"{stamp} WARNING parsers.csv: bad record {number} in file 7: missing '{field}'"
            )
        elif pick < 0.88:
            value = rng.choice(_WORDS)
            out.append(
                f"{stamp} ERROR parsers.csv: record {number} of file 7: "
                f"amount '{value}' is not a number"
            )
        elif pick < 0.95:
            out.append(
                f"{stamp} INFO parsers.db: inserted {rng.randint(1, 500)} rows "
                f"in {rng.randint(1, 900)}ms"
            )
        else:
            out.append(
                f"{stamp} INFO parsers.db: stored row id={uuid.UUID(int=rng.getrandbits(128))}"
            )
    out.append(
        f"{_stamp(lines)} INFO celery.app.trace: Task datafiles.tasks.parse[{task_id}] "
        f"succeeded in {rng.random():.4f}s: None"
    )
    return "\n".join(out) + "\n"


def distinct_log(lines: int, task_id: str, seed: int, *, changed: float, hostile: bool) -> str:
    """``lines`` distinct lines; a fraction ``changed`` differs from the seed-0 log's."""
    base, own = random.Random(0), random.Random(seed)
    out = []
    for number in range(lines):
        words = " ".join(base.choice(_WORDS) for _ in range(3))
        value = base.getrandbits(48)
        if own.random() < changed:
            words, value = "changed " + own.choice(_WORDS), own.getrandbits(48)
        if hostile:  # every line a shape of its own: a random word in hex, random lengths
            text = f"{words} {value:x} {'z' * (value % 7)} {base.getrandbits(32):x}"
        else:
            text = f"record {number} of file 7: field '{words}' value {value}"
        out.append(f"{_stamp(number)} INFO parsers.csv: {text} ({task_id})")
    return "\n".join(out) + "\n"


def _write(storage_dir: Path, name: str, text: str) -> str:
    key = f"bench/{name}.log.gz"
    path = storage_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode(), 6))
    return key


def _row(task_id: str, key: str) -> Any:
    from datetime import datetime, timedelta, timezone

    from celery_parselog.models import TaskLog

    started = datetime(2026, 11, 29, tzinfo=timezone.utc)
    return TaskLog(
        pk=1 if task_id.endswith("a") else 2,
        task_name="datafiles.tasks.parse",
        task_id=task_id,
        attempt=1,
        storage="default",
        key=key,
        upload_status="stored",
        state="succeeded",
        started=started,
        finished=started + timedelta(seconds=1),
        duration=timedelta(seconds=1),
        counts={},
    )


def child(params: dict[str, Any]) -> dict[str, Any]:
    import os

    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.proj.settings"
    import django

    django.setup()
    from django.core.files.storage import storages

    from celery_parselog.compare import compare_runs, read_log_text
    from celery_parselog.normalizing import Normalizer
    from celery_parselog.reading import LogLocation, decompressed_chunks, open_raw, split_lines

    storage_dir = Path(storages["default"].location)  # type: ignore[attr-defined]
    ids = ("c0ffee00-0000-4000-8000-00000000000a", "c0ffee00-0000-4000-8000-00000000000b")
    kind, lines, repetitions = str(params["kind"]), int(params["lines"]), int(params["repetitions"])
    if kind == "summary":
        texts = [parse_log(lines, ids[0], 1), parse_log(lines, ids[1], 2)]
    else:
        hostile = kind == "hostile"
        texts = [
            distinct_log(lines, ids[0], 1, changed=0.0, hostile=hostile),
            distinct_log(lines, ids[1], 2, changed=0.1, hostile=hostile),
        ]
    keys = [
        _write(storage_dir, f"{kind}-{side}", text) for side, text in zip("ab", texts, strict=True)
    ]
    text_bytes = [len(text.encode()) for text in texts]
    del texts
    measured: dict[str, list[float]] = {"floor": [], "variant": []}
    details: dict[str, Any] = {}
    for _ in range(repetitions):
        started = time.perf_counter()
        for key in keys:
            with open_raw(LogLocation("default", key)) as raw:
                sum(1 for _ in split_lines(decompressed_chunks(raw)))
        measured["floor"].append(time.perf_counter() - started)
        started = time.perf_counter()
        if kind == "summary":
            normalizer = Normalizer(ids)
            read = [
                read_log_text(LogLocation("default", key), normalizer=normalizer) for key in keys
            ]
            seconds = time.perf_counter() - started
            assert read[0].kinds is not None and read[1].kinds is not None
            details = {
                "lines_counted": [text.kinds.lines for text in read if text.kinds],
                "kinds": [len(text.kinds.kinds) for text in read if text.kinds],
                "not_grouped": [text.kinds.not_grouped for text in read if text.kinds],
            }
        else:
            comparison = compare_runs(_row(ids[0], keys[0]), _row(ids[1], keys[1]))
            seconds = time.perf_counter() - started
            details = {
                "diff_lines": len(comparison.diff),
                "kinds": len(comparison.kinds.rows) + comparison.kinds.hidden,
                "notes": comparison.notes + comparison.kinds.notes,
            }
        measured["variant"].append(seconds)
    return {"seconds": measured, "text_bytes": text_bytes, "lines": lines, **details}


def run(ctx: Context) -> PartResult:
    sizes = ctx.sizes
    raw: dict[str, Any] = {}
    for kind, lines in (
        ("summary", sizes.b7_summary_lines),
        ("compare", sizes.b7_compare_lines),
        ("hostile", sizes.b7_compare_lines),
    ):
        folder = ctx.work / f"b7-{kind}"
        raw[kind] = run_child(
            "benchmarks.b7_compare",
            {"kind": kind, "lines": lines, "repetitions": sizes.b7_repetitions},
            ctx.base_env(folder, BENCH_STORAGE="fs"),
            folder,
            timeout=3600,
        )

    def outcome(row: str, kind: str, target: float | None) -> Outcome:
        data = raw[kind]
        seconds = statistics.median(data["seconds"]["variant"])
        ratio = statistics.median(
            v / f for v, f in zip(data["seconds"]["variant"], data["seconds"]["floor"], strict=True)
        )
        mib = sum(data["text_bytes"]) / 2**20
        text = f"{seconds:.2f} s ({ratio:.1f} times a plain read of the same {mib:.0f} MiB)"
        notes = f"{data['lines']:,} lines a log"
        if kind == "summary":
            notes += f"; kinds {data['kinds']}, not grouped {data['not_grouped']}"
        else:
            notes += f"; {data['kinds']} kinds; notes: " + " ".join(data["notes"])[:300]
        met = None if target is None else seconds < target
        return Outcome(row, text, met, seconds, notes)

    full = sizes.mode == "full"
    outcomes = [
        outcome("b7.summary", "summary", _SUMMARY_TARGET if full else None),
        outcome("b7.compare", "compare", _COMPARE_TARGET if full else None),
        outcome("b7.hostile", "hostile", _COMPARE_TARGET if full else None),
    ]
    method = (
        "Each row: the median of the repetitions' wall time in a child process, and the "
        "median ratio to reading the same logs plainly (decompress and split into lines) "
        "in the same repetition. Targets in seconds apply to full sizes only."
    )
    return PartResult(outcomes, raw, method)


if __name__ == "__main__":
    child_entry(child)
