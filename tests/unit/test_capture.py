"""Unit tests for celery_parselog.capture: one run's spool file, what is written and counted."""

from __future__ import annotations

import logging
import stat
import zlib
from pathlib import Path

from celery_parselog.spool import remove_run_files, write_manifest
from tests.unit.captures import TASK_ID, TASK_NAME, MakeCapture, lines_of, record
from tests.unit.faults import file_size_limit


def test_spool_file_is_named_after_task_id_and_attempt(
    make_capture: MakeCapture, spool_dir: Path
) -> None:
    """The spool file lives in the spool folder and starts with ``<task id>-<attempt>-``."""
    run = make_capture(attempt=3)
    assert run.path.parent == spool_dir
    assert run.path.name.startswith(f"{TASK_ID}-3-")
    assert run.path.name.endswith(".log")
    assert run.path.exists()


def test_spool_file_of_a_compressed_run_ends_in_log_gz(make_capture: MakeCapture) -> None:
    """A compressed run's spool file ends in ``.log.gz``."""
    run = make_capture(compress_level=6)
    assert run.path.name.endswith(".log.gz")


def test_spool_file_is_private_to_its_owner(make_capture: MakeCapture) -> None:
    """The spool file is created with mode 0600."""
    run = make_capture()
    assert stat.S_IMODE(run.path.stat().st_mode) == 0o600


def test_spool_file_name_is_sanitized(make_capture: MakeCapture, spool_dir: Path) -> None:
    """A task id with path characters cannot place the spool file outside the spool folder."""
    run = make_capture(task_id="../../etc/passwd")
    assert run.path.resolve().parent == spool_dir.resolve()
    assert run.path.name.startswith("_")


def test_two_runs_of_the_same_task_attempt_get_different_files(make_capture: MakeCapture) -> None:
    """Two runs with the same task id and attempt never share or reuse a spool file."""
    first = make_capture()
    second = make_capture()
    assert first.path != second.path
    first.emit(record("first run"))
    second.emit(record("second run"))
    first.release()
    second.release()
    assert lines_of(first) == ["INFO tests.capture: first run"]
    assert lines_of(second) == ["INFO tests.capture: second run"]


def test_plain_run_writes_formatted_lines(make_capture: MakeCapture) -> None:
    """Records are written one formatted line each, in order, uncompressed."""
    run = make_capture()
    run.emit(record("rows %d", (10,)))
    run.emit(record("done", level=logging.WARNING, name="tests.other"))
    run.release()
    assert run.path.read_bytes() == b"INFO tests.capture: rows 10\nWARNING tests.other: done\n"


def test_gzip_run_decompresses_to_the_same_lines(make_capture: MakeCapture) -> None:
    """A compressed run's file is gzip and decompresses to the written lines."""
    run = make_capture(compress_level=9)
    for number in range(200):
        run.emit(record("line %d", (number,)))
    run.release()
    raw = run.path.read_bytes()
    assert raw[:2] == b"\x1f\x8b"
    assert lines_of(run) == [f"INFO tests.capture: line {n}" for n in range(200)]


def test_gzip_run_pushes_bytes_to_disk_before_close(make_capture: MakeCapture) -> None:
    """After sync(), compressed bytes of every record so far are on disk while the run is open."""
    run = make_capture(compress_level=6)
    run.emit(record("visible before close"))
    run.sync()
    partial = zlib.decompressobj(wbits=31).decompress(run.path.read_bytes())
    assert partial == b"INFO tests.capture: visible before close\n"
    assert not run.closed


def test_counts_by_level_name(make_capture: MakeCapture) -> None:
    """counts holds how many records of each level name were written."""
    run = make_capture(levelno=logging.DEBUG)
    run.emit(record("a", level=logging.DEBUG))
    run.emit(record("b"))
    run.emit(record("c"))
    run.emit(record("d", level=logging.ERROR))
    assert run.counts == {"DEBUG": 1, "INFO": 2, "ERROR": 1}


def test_first_error_is_the_first_line_of_the_first_error_record(make_capture: MakeCapture) -> None:
    """first_error is the first line of the first record at ERROR or above, and stays."""
    run = make_capture()
    run.emit(record("only info"))
    assert run.first_error is None
    run.emit(record("bad thing\nsecond line", level=logging.ERROR))
    run.emit(record("worse thing", level=logging.CRITICAL))
    assert run.first_error == "ERROR tests.capture: bad thing"


def test_saw_exception_is_set_by_a_record_with_exc_info(make_capture: MakeCapture) -> None:
    """saw_exception becomes true only once a record carrying exc_info is written."""
    run = make_capture()
    run.emit(record("an error without traceback", level=logging.ERROR))
    assert not run.saw_exception
    try:
        raise ValueError("boom")
    except ValueError:
        run.emit(record("failed", level=logging.ERROR, exc_info=True))
    assert run.saw_exception
    run.release()
    lines = lines_of(run)
    assert "Traceback (most recent call last):" in lines
    assert lines[-1] == "ValueError: boom"


def test_write_stream_joins_print_fragments_into_one_line(make_capture: MakeCapture) -> None:
    """The fragments print("rows", 10) writes become the single line "rows 10"."""
    run = make_capture()
    for fragment in ("rows", " ", "10", "\n"):
        run.write_stream("stdout", fragment)
    assert run.counts == {"INFO": 1}
    run.release()
    assert lines_of(run) == ["INFO stdout: rows 10"]


def test_write_stream_splits_several_lines_in_one_write(make_capture: MakeCapture) -> None:
    """One write holding several lines gives one record per line; the rest waits."""
    run = make_capture()
    run.write_stream("stdout", "one\ntwo\r\nthree")
    assert run.counts == {"INFO": 2}
    run.write_stream("stdout", " and more\n")
    run.release()
    assert lines_of(run) == [
        "INFO stdout: one",
        "INFO stdout: two",
        "INFO stdout: three and more",
    ]


def test_partial_line_is_flushed_at_close(make_capture: MakeCapture) -> None:
    """Text without a final newline is written as a line when the run closes."""
    run = make_capture()
    run.write_stream("stdout", "no newline")
    assert run.counts == {}
    run.release()
    assert lines_of(run) == ["INFO stdout: no newline"]


def test_stdout_and_stderr_partial_lines_are_kept_apart(make_capture: MakeCapture) -> None:
    """Unfinished stdout and stderr text are never joined into one line."""
    run = make_capture()
    run.write_stream("stdout", "out-")
    run.write_stream("stderr", "err-")
    run.write_stream("stdout", "done\n")
    run.write_stream("stderr", "done\n")
    run.release()
    assert lines_of(run) == ["INFO stdout: out-done", "WARNING stderr: err-done"]


def test_stderr_lines_are_warnings(make_capture: MakeCapture) -> None:
    """Lines written to stderr are recorded at WARNING by the ``stderr`` logger."""
    run = make_capture()
    run.write_stream("stderr", "careful\n")
    run.release()
    assert run.counts == {"WARNING": 1}
    assert lines_of(run) == ["WARNING stderr: careful"]


def test_stdout_lines_below_the_run_level_are_dropped(make_capture: MakeCapture) -> None:
    """At level WARNING, stdout lines (INFO) are dropped while stderr lines are kept."""
    run = make_capture(levelno=logging.WARNING)
    run.write_stream("stdout", "chatter\n")
    run.write_stream("stdout", "unfinished chatter")
    run.write_stream("stderr", "problem\n")
    run.release()
    assert lines_of(run) == ["WARNING stderr: problem"]
    assert run.counts == {"WARNING": 1}


def test_stream_lines_follow_the_logger_selection(make_capture: MakeCapture) -> None:
    """A selection that leaves out ``stdout`` drops printed lines, not stderr ones."""
    run = make_capture(allows_logger=lambda name: name != "stdout")
    run.write_stream("stdout", "printed\n")
    run.write_stream("stderr", "warned\n")
    run.release()
    assert lines_of(run) == ["WARNING stderr: warned"]


def test_lone_surrogates_are_written_as_backslash_escapes(make_capture: MakeCapture) -> None:
    """Text that is not valid UTF-8 (a lone surrogate) is escaped instead of failing."""
    run = make_capture()
    run.emit(record("bad byte \udcff here"))
    run.write_stream("stdout", "printed \udcfe\n")
    run.release()
    assert run.path.read_bytes() == (
        b"INFO tests.capture: bad byte \\udcff here\nINFO stdout: printed \\udcfe\n"
    )


def test_non_ascii_text_is_written_as_utf8(make_capture: MakeCapture) -> None:
    """Ordinary non-ASCII text is written as UTF-8, not escaped."""
    run = make_capture()
    run.emit(record("Ünïcödé ✓"))
    run.release()
    assert run.path.read_bytes() == "INFO tests.capture: Ünïcödé ✓\n".encode()


def test_record_that_cannot_be_formatted_is_replaced_by_a_note(make_capture: MakeCapture) -> None:
    """A record whose message formatting raises becomes a note line; nothing is raised."""
    run = make_capture()
    run.emit(record("%d", ("x",), name="tests.broken", level=logging.WARNING))
    run.emit(record("after"))
    run.release()
    assert lines_of(run) == [
        "-- celery-parselog could not format a record of logger 'tests.broken' "
        "at level WARNING: TypeError --",
        "INFO tests.capture: after",
    ]
    assert run.counts == {"WARNING": 1, "INFO": 1}


def test_emit_exception_writes_the_traceback(make_capture: MakeCapture) -> None:
    """emit_exception writes an ERROR line naming the task, with the error's traceback."""
    run = make_capture()
    try:
        raise KeyError("missing")
    except KeyError as error:
        caught = error
    run.emit_exception(caught)
    assert run.saw_exception
    assert (
        run.first_error
        == f"ERROR celery_parselog.task: Task {TASK_NAME}[{TASK_ID}] raised KeyError"
    )
    run.release()
    lines = lines_of(run)
    assert "Traceback (most recent call last):" in lines
    assert lines[-1] == "KeyError: 'missing'"


def test_emit_does_not_raise_when_the_spool_file_cannot_be_written(
    make_capture: MakeCapture,
) -> None:
    """A spool write that fails (file size limit, disk full) is not raised out of emit()."""
    run = make_capture()
    with file_size_limit(64):
        run.emit(record("x" * 100))  # written in part, up to the limit
        run.emit(record("the next record"))  # nothing more fits: the write fails
    assert run.counts["INFO"] >= 1


def test_emits_after_close_are_dropped(make_capture: MakeCapture) -> None:
    """Records and stream text arriving after close() are not written nor counted."""
    run = make_capture(compress_level=6)
    run.emit(record("before"))
    run.release()
    assert run.closed
    run.emit(record("after"))
    run.write_stream("stdout", "printed after\n")
    run.release()  # a second close changes nothing
    assert lines_of(run) == ["INFO tests.capture: before"]
    assert run.counts == {"INFO": 1}


def test_stored_run_leaves_nothing_in_the_spool_folder(
    make_capture: MakeCapture, spool_dir: Path
) -> None:
    """Once stored, remove_run_files deletes the spool file and its manifest, and release()
    closes the run; doing either again is harmless."""
    run = make_capture()
    run.emit(record("to be removed"))
    write_manifest(run.path, {"task_id": run.task_id})
    run.finish()
    remove_run_files(run.path)
    run.release()
    assert run.closed
    assert list(spool_dir.iterdir()) == []
    remove_run_files(run.path)
    run.release()
    assert not run.path.exists()


def test_redaction_applies_before_anything_is_written_or_kept(make_capture: MakeCapture) -> None:
    """The redactor sees the final text (arguments and traceback included) before the spool
    file or first_error does."""
    from celery_parselog.redaction import Redactor

    run = make_capture(fmt="%(levelname)s %(message)s", redact=Redactor(["email", "ssn"]).redact)
    try:
        raise ValueError("no match for 123-45-6789")
    except ValueError:
        run.emit(record("mail %s", ("jane@example.org",), level=logging.ERROR, exc_info=True))
    run.release()
    text = run.path.read_text()
    assert "jane@example.org" not in text and "123-45-6789" not in text
    assert "mail [REDACTED:email]" in text
    assert "ValueError: no match for [REDACTED:ssn]" in text
    assert run.first_error == "ERROR mail [REDACTED:email]"
