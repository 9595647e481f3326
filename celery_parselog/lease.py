"""Leases on running runs' rows, so a run whose worker is gone can be told from any host.

A worker's host (a container, say) can vanish with its spool disk; nothing on that host
will ever say its runs ended. So each ``running`` row carries a lease: the ``worker``
that owns it (its node name and a token drawn when that worker started) and a
``heartbeat`` time. The row is created with a fresh heartbeat (no extra write: the
two columns are part of the row's first write), and the worker's main process renews
the heartbeats of all its running rows with one ``UPDATE`` every :attr:`Lease.renew_every`
seconds. A row whose heartbeat is older than :attr:`Lease.seconds` belongs to a worker
that is gone, or cut off from the database for that long; any other live worker's
sweeper, or ``manage.py parselog_lost``, then marks it ``lost`` (see
:mod:`celery_parselog.lost`).

Heartbeats are written and judged with the database's own clock (``Now()``), so the
workers' clocks may disagree with each other. Rows without a heartbeat (written by a
process that is not a worker, or by an older version) are never judged.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "LEASE_SECONDS",
    "Lease",
    "LeaseKeeper",
    "begin",
    "end",
    "identity",
]

logger = logging.getLogger("celery_parselog")

# How long a running row's lease lasts without renewal. Read when a worker starts (not
# at import), so a test project may shorten it for its workers.
LEASE_SECONDS = 60.0
# How late a sweeper may be to a look it is due for: it wakes at least this often.
_WAKE_SECONDS = 1.0

# This worker's identity, set in its main process at ``worker_init`` (before the pool's
# children are forked, so they inherit it); empty outside workers.
_identity = ""


@dataclass(frozen=True)
class Lease:
    """The lease's timing; every figure follows from its length.

    The worker renews four times per lease, so three renewals in a row may fail (a
    database restart, a slow moment) before its runs could be judged lost. Sweepers
    look for expired leases as often as workers renew, and a sweeper wakes at least
    once a second, so a run is marked lost at most :attr:`bound` seconds after its
    worker's last renewal, hence after its death: 76 s with the default lease.
    """

    seconds: float = LEASE_SECONDS

    @classmethod
    def current(cls) -> Lease:
        return cls(LEASE_SECONDS)

    @property
    def renew_every(self) -> float:
        return self.seconds / 4

    @property
    def check_every(self) -> float:
        return self.seconds / 4

    @property
    def bound(self) -> float:
        """Longest time from a worker's death to its runs being marked lost by a live sweeper
        (one that is not busy uploading a backlog of orphans at that moment)."""
        return self.seconds + self.check_every + _WAKE_SECONDS


def begin(nodename: str) -> str:
    """Give this worker its identity: ``nodename`` and a token of this start.

    A token, because a worker that comes back under the same name (a restarted pod of a
    StatefulSet, with a new empty disk) must not renew the leases of its previous life.
    """
    global _identity
    _identity = f"{nodename}#{secrets.token_hex(4)}"[-255:]
    return _identity


def end() -> None:
    """Forget this process's identity (capture turned off)."""
    global _identity
    _identity = ""


def identity() -> str:
    """The identity of the worker this process belongs to, or ``""`` outside workers."""
    return _identity


class LeaseKeeper(threading.Thread):
    """Renews the leases of a worker's running rows, in the worker's main process.

    A thread of its own, so that nothing else the main process does (a sweep uploading
    a large orphan with retries) can delay a renewal past the lease.
    """

    def __init__(self, worker: str, lease: Lease, renew: Callable[[str], object]) -> None:
        """``renew(worker)`` renews the rows' leases (the records layer's, handed in so
        that this module, which the records layer reads the identity from, imports none)."""
        super().__init__(name="celery-parselog-lease", daemon=True)
        self.worker = worker
        self.lease = lease
        self._renew = renew
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self.lease.renew_every):
            self._renew(self.worker)

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and self is not threading.current_thread():
            self.join(timeout=10)
