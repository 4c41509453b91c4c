"""One worker at a time per integration (and per transfer run); different ones in parallel.

PostgreSQL: a session advisory lock keyed by the integration id. A SQLite file (development
and the demo, one machine by nature): an exclusive `flock` on a lock file next to nothing but
the database's path, which holds across worker processes and is released if the process dies.
An in-memory SQLite database (tests) is private to its process: a thread lock suffices.

The lock is *tried*, never waited for: a worker that does not get it leaves the work to the
holder, which looks again for new work after releasing it. A nested attempt from the same
thread (a webhook delivered in-process while we write) also backs off.

A transfer run is executed under both its own lock (`run_lock`) and a lease on its row
(`RunLease`): the lock keeps a live but slow worker's run from being taken over; the lease,
renewed every few seconds, tells the resume check within seconds that a worker has died.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from integrations.models import SyncRun

NAMESPACE = 0x5B1D  # first key of the two-key advisory lock: "SyncBridge integration"
RUN_NAMESPACE = 0x5B1E  # "SyncBridge transfer run"
_held = threading.local()


def _held_ids() -> set[tuple[int, int]]:
    if not hasattr(_held, "ids"):
        _held.ids = set()
    return _held.ids


def lock_dir() -> Path:
    base = (
        getattr(settings, "SYNC_LOCK_DIR", "") or Path(tempfile.gettempdir()) / "syncbridge-locks"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


_local_locks: dict[tuple[int, int], threading.Lock] = {}
_local_guard = threading.Lock()


@contextmanager
def _local_lock(key: tuple[int, int]) -> Iterator[bool]:
    with _local_guard:
        lock = _local_locks.setdefault(key, threading.Lock())
    if not lock.acquire(blocking=False):
        yield False
        return
    held = _held_ids()
    held.add(key)
    try:
        yield True
    finally:
        held.discard(key)
        lock.release()


@contextmanager
def integration_lock(integration_id: int) -> Iterator[bool]:
    """Yield True when this worker holds the integration's lock, False when another does."""
    with _try_lock(NAMESPACE, int(integration_id)) as acquired:
        yield acquired


@contextmanager
def run_lock(run_id: int) -> Iterator[bool]:
    """Yield True when this worker may execute the transfer run, False when another does.

    Held for as long as the worker executes the run; a worker that dies loses it with its
    database connection (or its process), so only live workers ever hold it.
    """
    with _try_lock(RUN_NAMESPACE, int(run_id)) as acquired:
        yield acquired


@contextmanager
def _try_lock(namespace: int, key: int) -> Iterator[bool]:
    held = _held_ids()
    if (namespace, key) in held:
        yield False
        return
    if connection.vendor == "postgresql":
        with _advisory_lock(namespace, key) as acquired:
            yield acquired
        return
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # Only this process sees an in-memory database (tests): a process-local lock will do,
        # and two unrelated test runs never contend for each other's lock file.
        with _local_lock((namespace, key)) as acquired:
            yield acquired
        return
    with _file_lock(namespace, key) as acquired:
        yield acquired


@contextmanager
def _advisory_lock(namespace: int, key: int) -> Iterator[bool]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [namespace, key])
        acquired = bool(cursor.fetchone()[0])
    if not acquired:
        yield False
        return
    held = _held_ids()
    held.add((namespace, key))
    try:
        yield True
    finally:
        held.discard((namespace, key))
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [namespace, key])


@contextmanager
def _file_lock(namespace: int, key: int) -> Iterator[bool]:
    db_name = os.path.abspath(str(connection.settings_dict.get("NAME") or "db"))
    kind = "integration" if namespace == NAMESPACE else "run"
    tag = f"{hashlib.sha1(db_name.encode()).hexdigest()[:12]}-{key}"
    fd = os.open(lock_dir() / f"{kind}-{tag}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        held = _held_ids()
        held.add((namespace, key))
        try:
            yield True
        finally:
            held.discard((namespace, key))
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- the lease on a transfer run -------------------------------------------------------------
LEASE = timedelta(seconds=20)  # a run whose lease is this old has lost its worker
RENEW_EVERY = timedelta(seconds=5)


class LeaseLost(Exception):
    """Another worker took the run over: this one must stop without touching it."""


def worker_name() -> str:
    """A name unique to this execution (host, process, thread and a random part)."""
    return (
        f"{socket.gethostname()[:24]}:{os.getpid()}:{threading.get_ident() % 10**6}:"
        + (uuid.uuid4().hex[:8])
    )


class RunLease:
    """The right to execute one transfer run, taken and renewed by compare-and-set UPDATEs.

    `take()` succeeds only when the run is active and its lease is free, expired or already
    ours; the UPDATE's WHERE clause is re-checked by the database under the row lock, so two
    workers racing for it cannot both win.
    """

    def __init__(self, run_id: int, owner: str | None = None) -> None:
        self.run_id = run_id
        self.owner = owner or worker_name()
        self.renewed_at: datetime | None = None

    def take(self, now: datetime | None = None, resume_failed: bool = False) -> bool:
        """Take the lease; `resume_failed`: a Failed run may be resumed too (Running again)."""
        now = now or timezone.now()
        free = Q(lease_owner="") | Q(lease_expires_at__lt=now) | Q(lease_owner=self.owner)
        resumable = Q(status__in=SyncRun.ACTIVE)
        if resume_failed:
            resumable |= Q(status=SyncRun.Status.FAILED)
        try:
            with transaction.atomic():
                taken = (
                    SyncRun.objects.filter(resumable, free, pk=self.run_id).update(
                        lease_owner=self.owner,
                        lease_expires_at=now + LEASE,
                        status=SyncRun.Status.RUNNING,
                    )
                    == 1
                )
        except IntegrityError:  # a failed run resumed while another transfer runs
            return False
        if taken:
            self.renewed_at = now
        return taken

    def renew(self, force: bool = False) -> None:
        """Push the expiry on (at most every RENEW_EVERY); raise LeaseLost if it was taken."""
        now = timezone.now()
        if not force and self.renewed_at and now - self.renewed_at < RENEW_EVERY:
            return
        kept = SyncRun.objects.filter(pk=self.run_id, lease_owner=self.owner).update(
            lease_expires_at=now + LEASE
        )
        if not kept:
            raise LeaseLost(f"transfer #{self.run_id} was taken over by another worker")
        self.renewed_at = now

    def release(self) -> None:
        SyncRun.objects.filter(pk=self.run_id, lease_owner=self.owner).update(
            lease_owner="", lease_expires_at=None
        )


UNDO_NAMESPACE = 0x5B1F  # "SyncBridge undo"


@contextmanager
def undo_lock(undo_id: int) -> Iterator[bool]:
    """Yield True when this worker may execute the undo, False when another does."""
    with _try_lock(UNDO_NAMESPACE, int(undo_id)) as acquired:
        yield acquired
