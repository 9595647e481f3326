"""B6: a page view of a hostile log stays within the preview's bounds.

A gzip bomb (zero bytes with no newline, compressed about a thousand times) is stored
through ``FileSystemStorage``, and the admin's preview is built for it in a child
process, counting the bytes of text it decompressed. The same bomb decompressed whole,
as a reader without bounds would, is the reference for the time ratio.
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

from benchmarks.context import Context, PartResult, child_entry, run_child
from benchmarks.report import Outcome

__all__ = ["run"]

_MIB = 1024 * 1024
_TEXT = {"full": 1024 * _MIB, "quick": 256 * _MIB, "smoke": 16 * _MIB}


def _bomb(text_bytes: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(16 * _MIB)
    parts = [compressor.compress(block) for _ in range(max(1, text_bytes // len(block)))]
    parts.append(compressor.flush())
    return b"".join(parts)


def child(params: dict[str, Any]) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    from celery_parselog import preview
    from celery_parselog.reading import LogLocation, decompressed_chunks

    data = _bomb(int(params["text_bytes"]))
    key = "bench/bomb.log.gz"
    storages["default"].save(key, ContentFile(data))
    location = LogLocation("default", key)

    started = time.perf_counter()
    shown = preview.build_preview(location, 50, size=len(data))
    preview_seconds = time.perf_counter() - started

    started = time.perf_counter()
    whole = 0
    with Path(storages["default"].path(key)).open("rb") as raw:
        for chunk in decompressed_chunks(raw):
            whole += len(chunk)
    whole_seconds = time.perf_counter() - started
    return {
        "stored_bytes": len(data),
        "text_bytes": whole,
        "preview_text_bytes": shown.text_read,
        "preview_seconds": preview_seconds,
        "whole_seconds": whole_seconds,
        "bound": preview.HEAD_MAX_TEXT_BYTES + preview.TAIL_MAX_TEXT_BYTES,
    }


def run(ctx: Context) -> PartResult:
    folder = ctx.work / "b6-preview"
    text_bytes = _TEXT.get(ctx.sizes.mode, _TEXT["quick"])
    data = run_child(
        "benchmarks.b6_preview",
        {"text_bytes": text_bytes},
        ctx.base_env(folder, BENCH_STORAGE="fs"),
        folder,
        timeout=1800,
    )
    read, bound = int(data["preview_text_bytes"]), int(data["bound"])
    ratio = float(data["preview_seconds"]) / float(data["whole_seconds"])
    outcomes = [
        Outcome(
            "b6.bomb_text",
            f"{read / _MIB:.0f} MiB of {int(data['text_bytes']) / _MIB:,.0f} MiB",
            read <= bound,
            read / _MIB,
            f"a {int(data['stored_bytes']) / _MIB:.2f} MiB gzip; bound {bound / _MIB:.0f} MiB",
        ),
        Outcome(
            "b6.bomb_time",
            f"{ratio:.3f}",
            None,
            ratio,
            "time to build the preview / time to decompress the whole bomb",
        ),
    ]
    method = (
        "One gzip bomb of zero bytes without a newline, stored on FileSystemStorage; the "
        "detail page's preview built for it in a fresh process, counting the text it "
        "decompressed; then the whole bomb decompressed, streamed, as the reference."
    )
    return PartResult(outcomes, data, method)


if __name__ == "__main__":
    child_entry(child)
