"""One worker at a time per integration; different integrations in parallel.

PostgreSQL: a session advisory lock keyed by the integration id. A SQLite file (development
and the demo, one machine by nature): an exclusive `flock` on a lock file next to nothing but
the database's path, which holds across worker processes and is released if the process dies.
An in-memory SQLite database (tests) is private to its process: a thread lock suffices.

The lock is *tried*, never waited for: a worker that does not get it leaves the work to the
holder, which looks again for new work after releasing it. A nested attempt from the same
thread (a webhook delivered in-process while we write) also backs off.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

NAMESPACE = 0x5B1D  # first key of the two-key advisory lock: "SyncBridge integration"
_held = threading.local()


def _held_ids() -> set[int]:
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


_local_locks: dict[int, threading.Lock] = {}
_local_guard = threading.Lock()


@contextmanager
def _local_lock(integration_id: int) -> Iterator[bool]:
    with _local_guard:
        lock = _local_locks.setdefault(integration_id, threading.Lock())
    if not lock.acquire(blocking=False):
        yield False
        return
    held = _held_ids()
    held.add(integration_id)
    try:
        yield True
    finally:
        held.discard(integration_id)
        lock.release()


@contextmanager
def integration_lock(integration_id: int) -> Iterator[bool]:
    """Yield True when this worker holds the integration's lock, False when another does."""
    integration_id = int(integration_id)
    held = _held_ids()
    if integration_id in held:
        yield False
        return
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [NAMESPACE, integration_id])
            acquired = bool(cursor.fetchone()[0])
        if not acquired:
            yield False
            return
        held.add(integration_id)
        try:
            yield True
        finally:
            held.discard(integration_id)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [NAMESPACE, integration_id])
        return
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        # Only this process sees an in-memory database (tests): a process-local lock will do,
        # and two unrelated test runs never contend for each other's lock file.
        with _local_lock(integration_id) as acquired:
            yield acquired
        return
    db_name = os.path.abspath(str(connection.settings_dict.get("NAME") or "db"))
    tag = f"{hashlib.sha1(db_name.encode()).hexdigest()[:12]}-{integration_id}"
    fd = os.open(lock_dir() / f"integration-{tag}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        held.add(integration_id)
        try:
            yield True
        finally:
            held.discard(integration_id)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
