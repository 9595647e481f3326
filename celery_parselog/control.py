"""“Store now”: asking the worker of a host to store the logs waiting in its spool folder.

A log whose upload failed waits in the spool folder of the machine that ran it until
a sweep stores it. The admin's “Store now” does not wait for the next sweep: it sends
Celery's own remote-control command ``parselog_store_now`` to the workers of that
host (``app.control.broadcast`` with a ``destination``), each runs
:func:`celery_parselog.recovery.recover_spool` at once, and their answers are shown.

The command is registered in a worker by :func:`register`, called when the worker
starts; it is never registered as a side effect of importing this module.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

__all__ = ["COMMAND", "StoreAnswer", "ask_to_store", "register", "store_now"]

COMMAND = "parselog_store_now"
# The command runs in the worker's consumer thread, which must keep serving the broker:
# recovery runs in a thread of its own, and the answer says so if it takes longer.
_WORK_SECONDS = 20.0
_PING_SECONDS = 1.0


def register() -> None:
    """Add ``parselog_store_now`` to this process's remote-control commands (idempotent)."""
    from celery.worker.control import Panel, control_command

    if COMMAND in Panel.data:
        return
    control_command(
        name=COMMAND,
        args=[("hostname", str), ("task_id", str)],
        signature="[hostname] [task_id]",
        help="Store the logs waiting in this worker's spool folder now.",
    )(_store_now_command)


def _store_now_command(
    state: Any, hostname: str | None = None, task_id: str | None = None, **_: Any
) -> dict[str, Any]:
    backend = getattr(getattr(state, "app", None), "backend", None)
    return store_now(hostname=hostname, task_id=task_id, backend=backend)


def store_now(
    *, hostname: str | None = None, task_id: str | None = None, backend: Any = None
) -> dict[str, Any]:
    """Run recovery of this machine's spool folder now; the answer the admin shows.

    A worker on another machine than ``hostname`` (the host that ran the run) does
    nothing: spool folders are per machine.
    """
    here = socket.gethostname()
    if hostname and hostname != here:
        return {"host": here, "this_host": False}
    from celery_parselog.conf import ParselogSettings, SettingError
    from celery_parselog.recovery import recover_spool

    try:
        settings = ParselogSettings()
        spool_dir, storage = settings.spool_dir, settings.storage
        attempts, backoff = settings.upload_attempts, settings.upload_backoff
    except SettingError as error:
        return {"host": here, "this_host": True, "ok": False, "error": str(error)}
    waiting = (
        sorted(path.name for path in spool_dir.glob(f"{task_id}-*.log*") if path.suffix != ".json")
        if task_id and spool_dir.is_dir()
        else []
    )
    answer: dict[str, Any] = {"host": here, "this_host": True, "spool": str(spool_dir)}
    answer["run_files"] = waiting

    def work() -> None:
        try:
            report = recover_spool(
                spool_dir, storage=storage, attempts=attempts, backoff=backoff, backend=backend
            )
        except Exception as error:  # noqa: BLE001 - reported to the admin, never raised
            answer.update(ok=False, error=f"{type(error).__name__}: {error}")
            return
        answer.update(
            ok=report.ok,
            stored=list(report.stored),
            failed=[[path.name, reason] for path, reason in report.failed],
            live=report.live,
        )

    worker = threading.Thread(target=work, name="celery-parselog-store-now", daemon=True)
    worker.start()
    worker.join(_WORK_SECONDS)
    if worker.is_alive():
        answer.update(ok=False, error=f"still storing after {_WORK_SECONDS:.0f} s; look again soon")
    return answer


@dataclass
class StoreAnswer:
    """What the workers asked to store a host's logs said, by worker name."""

    replies: dict[str, dict[str, Any]] = field(default_factory=dict)
    problem: str = ""

    def messages(self) -> list[tuple[bool, str]]:
        """One ``(ok, text)`` per worker on the host, or the problem."""
        if self.problem:
            return [(False, self.problem)]
        said: list[tuple[bool, str]] = []
        for name, reply in sorted(self.replies.items()):
            if not reply.get("this_host"):
                continue
            if reply.get("error"):
                said.append((False, f"{name}: {reply['error']}"))
                continue
            stored = reply.get("stored") or []
            failed = reply.get("failed") or []
            text = f"{name} stored {len(stored)} log{'' if len(stored) == 1 else 's'}"
            if stored:
                text += " (" + ", ".join(stored[:5]) + ("…" if len(stored) > 5 else "") + ")"
            if failed:
                text += f"; {len(failed)} could not be stored: {failed[0][1]}"
            if reply.get("live"):
                text += f"; {reply['live']} still being written"
            said.append((bool(reply.get("ok")), text + f" from {reply.get('spool')}."))
        if not said:
            hosts = ", ".join(sorted(str(r.get("host")) for r in self.replies.values()))
            said.append((False, f"No worker of that host answered (workers answering: {hosts})."))
        return said


def ask_to_store(
    app: Celery, hostname: str, task_id: str = "", *, timeout: float = _WORK_SECONDS + 5
) -> StoreAnswer:
    """Ask the workers of ``hostname`` to store their waiting logs now, and wait for them.

    Workers are found with a ping. A worker's name usually ends in ``@<hostname>``;
    when none does (a name given with ``-n``), every worker that answered is asked,
    and those on other machines say so and do nothing.
    """
    try:
        pongs = app.control.ping(timeout=_PING_SECONDS) or []
    except Exception as error:  # noqa: BLE001 - the broker may be down
        return StoreAnswer(problem=f"The workers could not be reached: {error}")
    names = sorted({name for pong in pongs for name in pong})
    if not names:
        return StoreAnswer(problem="No worker answered; is one running for that host?")
    on_host = [name for name in names if name.partition("@")[2] == hostname]
    try:
        replies = app.control.broadcast(
            COMMAND,
            arguments={"hostname": hostname, "task_id": task_id},
            destination=on_host or names,
            reply=True,
            timeout=timeout,
        )
    except Exception as error:  # noqa: BLE001
        return StoreAnswer(problem=f"The workers could not be asked: {error}")
    answer = StoreAnswer()
    for reply in replies or []:
        for name, body in reply.items():
            if isinstance(body, dict):
                answer.replies[name] = body
    if not answer.replies:
        answer.problem = f"No worker answered within {timeout:.0f} s."
    return answer
