"""End to end, round two of the faults: an orphan whose lock a freshly forked pool child
could inherit, a task that forks a process pool of its own, checkpoints read on a slow
link and past ``MAX_BYTES``, and JSON logs whose every line must be an object.

Real ``celery worker`` subprocesses, real Redis and moto's S3 server over HTTP; the slow
link is a TCP proxy in front of moto that holds every byte back before passing it on.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import signal
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from queue import Queue
from typing import Any

import pytest

from celery_parselog import log_info
from celery_parselog.formatting import NOTE_LOGGER
from tests.e2e.conftest import (
    BUCKET,
    RecordFault,
    StoppableS3,
    Worker,
    one_log,
    running_pid,
    s3_client,
    spool_contents,
    stored_text,
    wait_for,
    wrong_run,
)
from tests.e2e.test_nothing_lost import (
    PARSE,
    SLOW,
    slow_lines,
    stored_info,
    stored_or_none,
)
from tests.notes import INCOMPLETE_TRAILER

UNSELECTED = "tests.e2e.proj.tasks.unselected"
FORKING = "tests.e2e.proj.tasks.forking_parse"
# The least cap the setting takes: a few thousand short lines pass it.
MAX_BYTES = "65536"
CAPPED_LINES = 3000


# -- a slow link ------------------------------------------------------------------------


class DelayProxy:
    """A TCP proxy that passes every chunk on ``one_way`` seconds after it arrived, in both
    directions: a link whose round trip is twice that, with its bandwidth left alone (a
    chunk's wait runs while the next one is read)."""

    def __init__(self, upstream_port: int, one_way: float) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._one_way = one_way
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="delay-proxy", daemon=True).start()

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            for source, target in ((client, server), (server, client)):
                chunks: Queue[tuple[float, bytes]] = Queue()
                threading.Thread(target=self._read, args=(source, chunks), daemon=True).start()
                threading.Thread(target=self._write, args=(chunks, target), daemon=True).start()

    def _read(self, source: socket.socket, chunks: Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            chunks.put((time.monotonic() + self._one_way, data))
            if not data:
                return

    @staticmethod
    def _write(chunks: Queue[tuple[float, bytes]], target: socket.socket) -> None:
        while True:
            due, data = chunks.get()
            time.sleep(max(0.0, due - time.monotonic()))
            try:
                if not data:
                    target.shutdown(socket.SHUT_WR)
                    return
                target.sendall(data)
            except OSError:
                return


@pytest.fixture
def slow_link(s3_endpoint: str) -> Iterator[DelayProxy]:
    """The session's S3 server behind a link with a 50 ms round trip."""
    proxy = DelayProxy(int(s3_endpoint.rsplit(":", 1)[1]), one_way=0.025)
    yield proxy
    proxy.close()


# -- what the tests look at ---------------------------------------------------------------


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is ``pid``: a prefork worker's pool children."""
    children = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (command) state ppid ...": the command may hold spaces and brackets.
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.add(int(stat_file.parent.name))
    return children


def lock_holder(path: Path) -> int | None:
    """The process that took the ``flock`` on ``path``, from ``/proc/locks``; ``None`` when
    nobody holds it. A lock a forked child inherited is still listed under its taker."""
    inode = str(path.stat().st_ino)
    for line in Path("/proc/locks").read_text().splitlines():
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"; a waiter's line has "->".
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == inode:
            return int(fields[4])
    return None


def stored_lines(client: Any, key: str) -> list[str] | None:
    """The lines of the object at ``key``, or ``None`` when there is none."""
    try:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None
    return gzip.decompress(body).decode().splitlines()


def json_object(line: str) -> dict[str, Any] | None:
    """The line as a JSON object, or ``None`` when it is not one."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def only_spool_file(worker: Worker) -> Path:
    (name,) = [name for name in spool_contents(worker) if name.endswith(".log.gz")]
    return worker.state_dir / "spool" / name


# -- the faults -----------------------------------------------------------------------------


def test_orphan_is_stored_while_its_worker_lives_though_a_child_forked_during_its_sweep(
    start_worker: Any, stoppable_s3: StoppableS3, record_fault: RecordFault
) -> None:
    """S3 down and a prefork child killed: while a sweep holds the orphan's lock through its
    failing upload, the pool forks a fresh child. Once S3 is back, the same worker stores
    the orphan, because no child kept a share of its lock."""
    worker: Worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        # Each task ends its child, so the main process forks a fresh one when we ask.
        "--max-tasks-per-child",
        "1",
        env={
            "E2E_S3_ENDPOINT": stoppable_s3.endpoint,
            # A failing upload holds the orphan's lock for several seconds of backoff.
            "E2E_UPLOAD_ATTEMPTS": "4",
            "E2E_UPLOAD_BACKOFF": "1",
            "E2E_RECOVERY_INTERVAL": "2",
        },
    )
    main = worker.process.pid
    result = worker.send(SLOW, 90, seconds=120)
    pid = running_pid(worker, 90)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    orphan = only_spool_file(worker)
    stoppable_s3.stop()
    os.kill(pid, signal.SIGKILL)

    def failed_sweeps() -> int:  # the orphan is the only log in the folder
        return worker.log_text().count("could not be stored yet")

    wait_for(lambda: lock_holder(orphan) == main, 60, "a sweep to take the orphan's lock")
    sweeps_before = failed_sweeps()
    children_before = child_pids(main)
    assert worker.send(UNSELECTED, 90).get(timeout=60) == 90
    fresh = wait_for(lambda: child_pids(main) - children_before, 60, "a fresh pool child")
    # The fresh child was forked while that same sweep still held the lock.
    assert lock_holder(orphan) == main
    assert failed_sweeps() == sweeps_before
    assert fresh <= child_pids(main)  # it lives on, idle
    wait_for(lambda: failed_sweeps() > sweeps_before, 120, "the sweep to give up")

    stoppable_s3.start()
    try:
        info = wait_for(
            lambda: stored_or_none(result), 90, "the orphan to be stored while its worker lives"
        )
    except AssertionError as timed_out:
        raise AssertionError(
            f"{timed_out}; the worker's log:\n{worker.log_text()[-4000:]}"
        ) from None
    assert worker.process.poll() is None
    assert stored_text(stoppable_s3.endpoint, info) == [*slow_lines(90), INCOMPLETE_TRAILER]
    assert wait_for(lambda: spool_contents(worker) == [], 10, "the spool to empty")
    record_fault(
        "S3 down, child killed, a fresh child forked during the failing sweep; "
        "stored by the same worker once S3 is back",
        state_kept=result.state == "FAILURE",
        **one_log(info, result.id),
    )


def test_task_forking_a_process_pool_keeps_its_own_log_whole(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """A task runs a fork-based ``multiprocessing`` pool whose jobs log: the stored gzip is
    readable, its digest is the entry's, and it holds the task's own lines, none of the
    forked processes'."""
    # Prefork children are daemonic, and multiprocessing lets no daemonic process have
    # children: a task with a pool of its own runs in a solo (or threads) worker.
    worker = start_worker("--pool", "solo")
    result = worker.send(FORKING, 95)
    assert result.get(timeout=120) == 4
    info = stored_info(result)
    body = s3_client(s3_endpoint).get_object(Bucket=BUCKET, Key=info.key)["Body"].read()
    assert info.sha256 == hashlib.sha256(body).hexdigest()
    try:
        lines = gzip.decompress(body).decode().splitlines()
    except (OSError, EOFError, zlib.error) as error:
        pytest.fail(f"the stored log is not a readable gzip: {error}")
    from_pool = [line for line in lines if "pool job" in line]
    assert from_pool == []
    assert lines[:2] == [
        "INFO e2eproj.records: pool of file 95 starts",
        "INFO e2eproj.records: pool of file 95 done: 4 jobs",
    ]
    assert lines[2].startswith("INFO celery.app.trace: Task tests.e2e.proj.tasks.forking_parse[")
    record_fault(
        "Task runs a fork-based `multiprocessing` pool whose processes log",
        state_kept=result.state == "SUCCESS",
        logs_expected=1,
        logs_stored=int(info.stored),
        logs_misattributed=wrong_run(info, result.id, 1) + int(bool(from_pool)),
    )


def test_a_reader_never_finds_the_log_missing_or_shorter_between_checkpoints(
    start_worker: Any, s3_endpoint: str, slow_link: DelayProxy, record_fault: RecordFault
) -> None:
    """Checkpoints every second over a 50 ms link: a reader polling the run's key from the
    first checkpoint until the final upload never finds it missing, nor shorter than the
    read before."""
    worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        env={"E2E_S3_ENDPOINT": slow_link.endpoint, "E2E_CHECKPOINT_SECONDS": "1"},
    )
    result = worker.send(PARSE, 99, lines=60, pause=0.1)
    key = f"parsing_logs/99/None/{result.id}-1.log.gz"
    client = s3_client(s3_endpoint)  # the reader is on a fast link of its own
    reads: list[int | None] = []  # lines found by each read, None when the key was missing
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done = stored_or_none(result) is not None
        found = stored_lines(client, key)
        reads.append(None if found is None else len(found))
        if done:
            break
    info = stored_info(result, timeout=1)
    first = next(number for number, lines in enumerate(reads) if lines is not None)
    since_first = reads[first:]
    lengths = [lines for lines in since_first if lines is not None]
    assert len(set(lengths)) >= 3, "fewer than two checkpoints were read before the final log"
    missing = since_first.count(None)
    shorter = sum(later < earlier for earlier, later in itertools.pairwise(lengths))
    assert missing == 0, f"the key was missing in {missing} of {len(since_first)} reads"
    assert shorter == 0, f"{shorter} reads found a shorter log than the read before"
    final = stored_text(s3_endpoint, info)
    assert final[0] == "INFO e2eproj.task: parse start 99"
    assert len(final) == lengths[-1]
    record_fault(
        "Checkpoints every second on a 50 ms link, read while the task runs",
        state_kept=result.state == "SUCCESS",
        **one_log(info, result.id),
    )


def test_a_capped_runs_checkpoint_keeps_the_tail_for_a_lost_worker(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """A run past ``MAX_BYTES`` with checkpoints every second: a checkpoint holds the head,
    the cut note and the kept tail up to the last line, so when the whole worker is then
    lost, storage keeps the log to its last line."""
    worker = start_worker(
        "--pool",
        "solo",
        env={"E2E_CHECKPOINT_SECONDS": "1", "E2E_MAX_BYTES": MAX_BYTES},
    )
    result = worker.send(SLOW, 98, seconds=120, lines=CAPPED_LINES)
    running_pid(worker, 98)
    expected = slow_lines(98, CAPPED_LINES)
    key = f"parsing_logs/98/None/{result.id}-1.log.gz"
    client = s3_client(s3_endpoint)

    def with_last_line() -> list[str] | None:
        lines = stored_lines(client, key)
        return lines if lines and lines[-1] == expected[-1] else None

    def names_a_checkpoint() -> bool:
        published = log_info(result)
        return published is not None and published.checkpoint is not None

    wait_for(with_last_line, 60, "a checkpoint that holds the log's last line")
    # The entry names a checkpoint once its publish, which follows the upload, is done.
    wait_for(names_a_checkpoint, 30, "the entry to name the checkpoint")
    # The machine is lost: nothing will recover the spool file; storage has what it has.
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(10)
    kept = stored_lines(client, key)
    assert kept is not None
    cuts = [number for number, line in enumerate(kept) if "left out here" in line]
    assert len(cuts) == 1, kept[:3]
    head, tail = kept[: cuts[0]], kept[cuts[0] + 1 :]
    assert head == expected[: len(head)]
    assert tail == expected[-len(tail) :]
    info = log_info(result)
    assert info is not None and info.key == key and info.checkpoint is not None
    record_fault(
        "Run past `MAX_BYTES`, whole worker then lost; its checkpoint keeps the tail",
        # Nothing stored a result for the lost run; capture does not invent one.
        state_kept=result.state == "PENDING",
        logs_expected=1,
        logs_stored=int(kept[-1] == expected[-1]),
        logs_misattributed=wrong_run(info, result.id, 1),
    )


def test_json_logs_have_an_object_on_every_line_the_package_writes(
    start_worker: Any, s3_endpoint: str, record_fault: RecordFault
) -> None:
    """With ``FORMAT = "json"``: the cut note of a capped log, the note of a record that
    could not be formatted and the trailer of a killed run are JSON objects, like every
    other line, in a log that ends and in one that recovery stores."""
    worker = start_worker(
        "--pool",
        "prefork",
        "--concurrency",
        "1",
        env={"E2E_PARSELOG_FORMAT": "json", "E2E_MAX_BYTES": MAX_BYTES},
    )
    ended = worker.send(SLOW, 96, seconds=0, lines=CAPPED_LINES, unprintable=True)
    assert ended.get(timeout=60) == 96
    killed = worker.send(SLOW, 97, seconds=120, lines=CAPPED_LINES, unprintable=True)
    pid = running_pid(worker, 97)
    time.sleep(0.5)  # compressed lines reach the disk within a fifth of a second
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(Exception, match="Worker exited prematurely"):
        killed.get(timeout=60)
    notes: dict[str, list[str]] = {}
    not_objects: list[str] = []
    misattributed = 0
    for name, result in (("ended", ended), ("killed", killed)):
        info = stored_info(result)
        misattributed += wrong_run(info, result.id, 1)
        objects = []
        for line in stored_text(s3_endpoint, info):
            if (value := json_object(line)) is None:
                not_objects.append(line)
            else:
                objects.append(value)
        notes[name] = [value["message"] for value in objects if value["logger"] == NOTE_LOGGER]
    assert not_objects == [], not_objects[:5]
    for name in ("ended", "killed"):
        assert any(note.startswith("celery-parselog could not format") for note in notes[name])
        assert any("left out here" in note for note in notes[name])
    assert notes["killed"][-1] == "log incomplete: worker lost"
    record_fault(
        'JSON format: the package\'s own lines (cut, unformattable record, "worker lost")',
        state_kept=ended.state == "SUCCESS" and killed.state == "FAILURE",
        logs_expected=2,
        logs_stored=len(notes),
        logs_misattributed=misattributed,
    )
