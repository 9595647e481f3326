"""Unit tests for celery_parselog.preview and reading: bounded reads of stored logs."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from celery_parselog import preview as preview_module
from celery_parselog.preview import LINE_MAX_BYTES, build_preview
from celery_parselog.reading import (
    CHUNK,
    CUT_LINE,
    LogLocation,
    decompressed_chunks,
    human_size,
    open_raw,
    split_lines,
)
from tests.unit.runs import S3_ALIAS, counting_reads, s3_storage, store_text


def numbered(count: int, width: int = 0) -> str:
    """``count`` lines ``line 1`` … ``line N``, padded to ``width`` characters when given."""
    return "".join(f"line {n}".ljust(width) + "\n" for n in range(1, count + 1))


def location(key: str, alias: str = "default") -> LogLocation:
    """Where a test log is stored."""
    return LogLocation(alias, key)


@pytest.fixture
def small_bounds() -> Iterator[None]:
    """Bounds small enough to pass with logs of a few hundred kilobytes."""
    with (
        mock.patch.object(preview_module, "HEAD_MAX_BYTES", 16 * 1024),
        mock.patch.object(preview_module, "TAIL_MAX_BYTES", 64 * 1024),
    ):
        yield


@pytest.mark.parametrize("key", ["short.log", "short.log.gz"])
def test_a_short_log_is_shown_whole(key: str) -> None:
    """A log of at most N lines is shown whole, numbered, with no tail."""
    store_text(key, numbered(5))
    shown = build_preview(location(key), 5)
    assert shown.whole
    assert [(line.number, line.text) for line in shown.head] == [
        (n, f"line {n}") for n in range(1, 6)
    ]
    assert shown.tail == []
    assert shown.gap == ""
    assert shown.notes == []
    assert shown.error == ""


@pytest.mark.parametrize("key", ["mid.log", "mid.log.gz"])
def test_head_and_tail_with_the_count_of_lines_between(key: str) -> None:
    """A longer log shows its first and last N lines and how many lines lie between."""
    store_text(key, numbered(130))
    shown = build_preview(location(key), 50)
    assert not shown.whole
    assert [line.number for line in shown.head] == list(range(1, 51))
    assert [line.number for line in shown.tail] == list(range(81, 131))
    assert shown.tail[-1].text == "line 130"
    assert shown.gap == "… 30 lines not shown …"


def test_head_and_tail_never_overlap() -> None:
    """With fewer than 2N lines, the tail holds only the lines after the head."""
    store_text("overlap.log.gz", numbered(55))
    shown = build_preview(location("overlap.log.gz"), 50)
    assert [line.number for line in shown.head] == list(range(1, 51))
    assert [line.number for line in shown.tail] == list(range(51, 56))
    assert shown.gap == ""


def test_an_empty_log_is_whole() -> None:
    """An empty log is a whole log of no lines."""
    store_text("empty.log.gz", "")
    shown = build_preview(location("empty.log.gz"), 50)
    assert shown.whole
    assert shown.head == []


@pytest.mark.usefixtures("small_bounds")
def test_a_big_compressed_log_reads_only_its_head() -> None:
    """A gzip log bigger than the tail bound is read only as far as its first lines."""
    text = "".join(f"{n} {zlib.crc32(str(n).encode()):08x}{n * 7919:x}\n" for n in range(60_000))
    size, _ = store_text("big.log.gz", text)
    assert size > 64 * 1024
    with counting_reads() as read:
        shown = build_preview(location("big.log.gz"), 50, size=size)
    assert [line.text for line in shown.head] == text.splitlines()[:50]
    assert shown.tail == []
    assert read[0] <= 16 * 1024
    assert shown.bytes_read == read[0]
    assert "The last lines are not shown" in shown.notes[0]
    assert "compressed" in shown.notes[0]


@pytest.mark.usefixtures("small_bounds")
def test_a_compressed_log_of_unknown_size_stops_at_the_bound() -> None:
    """When the storage cannot tell the size, the tail read still stops at its bound."""
    text = "".join(f"{n} {zlib.crc32(str(n).encode()):08x}{n * 7919:x}\n" for n in range(60_000))
    size, _ = store_text("unknown.log.gz", text)
    unknown = mock.patch.object(preview_module, "stored_size", return_value=None)
    with counting_reads() as read, unknown:
        shown = build_preview(location("unknown.log.gz"), 50)
    assert read[0] <= 16 * 1024 + 64 * 1024
    assert read[0] < size
    assert shown.tail == []
    assert "larger than that" in shown.notes[0]


@pytest.mark.usefixtures("small_bounds")
def test_a_big_plain_log_reads_its_tail_from_the_end() -> None:
    """A big plain log's tail is read from its last bytes, never the middle."""
    text = numbered(40_000, width=20)
    size, _ = store_text("big.log", text)
    assert size > 16 * 1024 + 64 * 1024
    with counting_reads() as read:
        shown = build_preview(location("big.log"), 50, size=size)
    assert [line.text for line in shown.tail] == [
        f"line {n}".ljust(20) for n in range(39_951, 40_001)
    ]
    assert all(line.number is None for line in shown.tail)
    assert shown.gap == "… lines not shown …"
    assert read[0] <= 16 * 1024 + 64 * 1024


def test_real_bounds_on_a_plain_log_of_twelve_megabytes() -> None:
    """With the shipped bounds, a 12 MB log costs at most HEAD_MAX_BYTES + TAIL_MAX_BYTES."""
    text = numbered(400_000, width=30)
    size, _ = store_text("twelve.log", text)
    assert size > 12_000_000
    with counting_reads() as read:
        shown = build_preview(location("twelve.log"), 50, size=size)
    assert read[0] <= preview_module.HEAD_MAX_BYTES + preview_module.TAIL_MAX_BYTES
    assert shown.tail[-1].text.strip() == "line 400000"


def test_compressed_text_past_the_text_bound_is_not_shown() -> None:
    """A small gzip object that inflates past the text bound is not read to its end."""
    text = ("x" * 999 + "\n") * 20_000  # 20 MB of text, a few kilobytes compressed
    store_text("inflating.log.gz", text)
    with mock.patch.object(preview_module, "TAIL_MAX_TEXT_BYTES", 1024 * 1024):
        shown = build_preview(location("inflating.log.gz"), 5)
    assert len(shown.head) == 5
    assert shown.tail == []
    assert "not shown" in shown.notes[0]


def test_a_very_long_line_is_cut() -> None:
    """A line longer than LINE_MAX_BYTES is shown cut, with a mark."""
    store_text("long.log.gz", "start\n" + "y" * 5_000_000 + "\nend\n")
    shown = build_preview(location("long.log.gz"), 50)
    assert shown.whole
    assert [line.text[:5] for line in shown.head] == ["start", "yyyyy", "end"]
    assert shown.head[1].text.endswith(CUT_LINE.decode())
    assert len(shown.head[1].text.encode()) == LINE_MAX_BYTES + len(CUT_LINE)


def test_a_missing_log_is_reported() -> None:
    """A key with no object gives a preview with an error, not an exception."""
    shown = build_preview(location("no/such.log.gz"), 50)
    assert "not in the storage" in shown.error


def test_an_unreadable_storage_is_reported() -> None:
    """A storage error is shown as the preview's error."""
    shown = build_preview(LogLocation("no-such-alias", "x.log"), 50)
    assert "could not be read" in shown.error


def test_a_log_cut_short_yields_what_it_holds(tmp_path: Path) -> None:
    """A gzip stream without its end (writer killed) gives the lines that were written."""
    whole = gzip.compress(numbered(2000).encode(), mtime=0)
    store_text("cut.log", whole[: len(whole) // 2])  # plain name, gzip content
    shown = build_preview(location("cut.log"), 10)
    assert [line.text for line in shown.head] == [f"line {n}" for n in range(1, 11)]


def test_concatenated_gzip_members_are_all_read() -> None:
    """A log made of several gzip members is read through all of them."""
    data = gzip.compress(b"one\ntwo\n") + gzip.compress(b"three\n")
    chunks = decompressed_chunks(_Stream(data), chunk=4)
    assert b"".join(chunks) == b"one\ntwo\nthree\n"


def test_split_lines_joins_chunks_and_cuts_long_lines() -> None:
    """Lines are rebuilt across chunks, and lines past max_line keep only their start."""
    assert list(split_lines([b"ab\ncd", b"ef\n", b"\nx"])) == [b"ab", b"cdef", b"", b"x"]
    assert list(split_lines([b"abcdefgh", b"ijk\nxy\n"], max_line=5)) == [
        b"abcde" + CUT_LINE,
        b"xy",
    ]


def test_human_size() -> None:
    """Sizes read as people say them."""
    assert [human_size(n) for n in (0, 812, 1024, 1536, 4 * 1024**2, 3 * 1024**3)] == [
        "0 bytes",
        "812 bytes",
        "1 KiB",
        "1.5 KiB",
        "4 MiB",
        "3 GiB",
    ]


# -- S3 -------------------------------------------------------------------------------


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[None]:
    """The ``s3`` storage alias on moto."""
    with s3_storage(tmp_path):
        yield


@pytest.mark.usefixtures("s3", "small_bounds")
def test_s3_logs_are_streamed_not_downloaded() -> None:
    """On S3 the preview streams the object's body; S3File never downloads it whole."""
    text = numbered(40_000, width=20)
    store_text("big.log", text, alias=S3_ALIAS)
    store_text("small.log.gz", numbered(130), alias=S3_ALIAS)
    from storages.backends.s3 import S3File

    with mock.patch.object(S3File, "_get_file", side_effect=AssertionError("whole download")):
        big = build_preview(location("big.log", S3_ALIAS), 50)
        small = build_preview(location("small.log.gz", S3_ALIAS), 50)
    assert big.error == ""
    assert big.tail[-1].text.strip() == "line 40000"
    assert big.bytes_read <= 16 * 1024 + 64 * 1024
    assert [line.number for line in small.tail] == list(range(81, 131))


@pytest.mark.usefixtures("s3")
def test_s3_missing_object_and_range_past_the_end() -> None:
    """A missing S3 object is FileNotFoundError; a range past the end reads nothing."""
    store_text("tiny.log", "abc\n", alias=S3_ALIAS)
    with pytest.raises(FileNotFoundError), open_raw(location("gone.log", S3_ALIAS)):
        pass
    with open_raw(location("tiny.log", S3_ALIAS), start=100) as raw:
        assert raw.read(10) == b""
    assert "not in the storage" in build_preview(location("gone.log", S3_ALIAS), 5).error


class _Stream:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        piece = self._data[self._at : end]
        self._at += len(piece)
        return piece


# -- bounds against hostile logs, highlighting, pages --------------------------------


def gzip_bomb(text_bytes: int) -> bytes:
    """Gzip of ``text_bytes`` zero bytes with no newline: about a thousandth of the size."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(16 * 1024 * 1024)
    parts = [compressor.compress(block) for _ in range(text_bytes // len(block))]
    parts.append(compressor.flush())
    return b"".join(parts)


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """1 GiB of text in about 1 MiB of gzip."""
    return gzip_bomb(1024**3)


def test_a_gzip_bomb_is_not_decompressed_on_a_page_view(bomb: bytes) -> None:
    """A 1 MiB gzip of 1 GiB of text decompresses no more than the preview's text bounds."""
    assert len(bomb) <= 1.1 * 1024**2
    key = "bomb.log.gz"
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    storages["default"].delete(key)
    storages["default"].save(key, ContentFile(bomb))
    produced = [0]
    real = decompressed_chunks

    def counted(raw: object, **kwargs: object) -> Iterator[bytes]:
        for data in real(raw, **kwargs):  # type: ignore[arg-type]
            produced[0] += len(data)
            yield data

    with mock.patch.object(preview_module, "decompressed_chunks", counted):
        shown = build_preview(location(key), 50, size=len(bomb))
    limit = preview_module.HEAD_MAX_TEXT_BYTES + preview_module.TAIL_MAX_TEXT_BYTES
    # Each of the two passes may decompress one chunk past its bound before stopping.
    assert produced[0] <= limit + 2 * CHUNK
    assert shown.text_read <= limit
    assert shown.head and shown.head[0].text.endswith("[line cut]")
    assert any("not shown" in note for note in shown.notes)


def test_lines_are_classified_by_their_records_level() -> None:
    """ERROR and CRITICAL lines are errors, WARNING lines warnings, a traceback and the
    exception line ending it are traceback lines of the record above; JSON lines too."""
    from celery_parselog.lines import LineClassifier

    classifier = LineClassifier()
    lines = [
        "2026-11-29T19:52:10.418Z INFO app: fine, no ERROR here",
        "2026-11-29T19:52:10.418Z WARNING app: odd",
        "ERROR celery.app.trace: Task t[1] raised",
        "Traceback (most recent call last):",
        '  File "x.py", line 1, in f',
        "ValueError: bad",
        "INFO app: next record",
        '{"ts": "t", "level": "CRITICAL", "message": "down"}',
        "a continuation of that record",
    ]
    kinds = [classifier.classify(line).css for line in lines]
    assert kinds == [
        "",
        "warning",
        "error",
        "traceback",
        "traceback",
        "traceback",
        "",
        "error",
        "error",
    ]


def test_a_page_of_the_whole_log_stops_at_its_text_bound() -> None:
    """Reading a page stops after its text bound and says where; lines keep their numbers."""
    from celery_parselog.preview import read_page

    store_text("paged.log.gz", numbered(10_000, width=99))
    page = read_page(location("paged.log.gz"), start=9_990, lines=5, text_limit=100 * 5_000)
    assert page.lines == []
    assert page.scanned_to == 5_000
    assert not page.ended
    assert "Reading stopped after" in page.notes[0]
    whole = read_page(location("paged.log.gz"), start=9_998, lines=5)
    assert [line.number for line in whole.lines] == [9_998, 9_999, 10_000]
    assert whole.ended and whole.next_start is None and whole.previous_start == 9_993
