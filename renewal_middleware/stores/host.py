"""The store shared by every worker process of one host: SQLite plus ``flock`` lock files.

Lineages, tombstones and claims live in an SQLite database in WAL mode (readers
never wait for the writer). Renewal locks are ``flock`` locks on 256 bucket files:
the kernel wakes a blocked ``flock`` as soon as the holder releases it, or dies,
so a killed worker never leaves a session locked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

from .base import Lineage, Lock, StoreUnavailable, Tombstone
from .host_files import FileLock, check_directory, flock_within, open_bucket, refuse

#: Expired rows are deleted at most this often (seconds of the store's clock).
PURGE_INTERVAL = 60.0
BUSY_TIMEOUT_MS = 5000

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS lineages (id TEXT PRIMARY KEY, generation INTEGER NOT NULL,"
    " sealed TEXT NOT NULL, ended INTEGER NOT NULL, expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tombstones (key TEXT PRIMARY KEY, at REAL NOT NULL,"
    " expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tombstones_at ON tombstones (at)",
    "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires REAL NOT NULL)",
)

# A stored lineage that is newer or ended wins, unless it has expired.
_WRITE = """
INSERT INTO lineages (id, generation, sealed, ended, expires) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET generation = excluded.generation, sealed = excluded.sealed,
    ended = excluded.ended, expires = excluded.expires
WHERE lineages.expires <= ?
   OR (lineages.ended = 0 AND lineages.generation <= excluded.generation)
"""

_END = """
INSERT INTO lineages (id, generation, sealed, ended, expires) VALUES (:id, 0, '', 1, :expires)
ON CONFLICT (id) DO UPDATE SET sealed = '', ended = 1,
    generation = CASE WHEN lineages.expires <= :now THEN 0 ELSE lineages.generation END,
    expires = CASE WHEN lineages.expires <= :now THEN excluded.expires
                   ELSE max(lineages.expires, excluded.expires) END
"""

_BURY = """
INSERT INTO tombstones (key, at, expires) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET at = max(tombstones.at, excluded.at),
    expires = max(tombstones.expires, excluded.expires)
"""

_CLAIM = """
INSERT INTO claims (key, expires) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE claims.expires <= ?
"""


def default_directory(issuer: str, client_id: str) -> str:
    """The directory of the app's client under the temp dir, one per user."""
    digest = hashlib.sha256(f"{issuer}\0{client_id}".encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"renewal-middleware-{os.getuid()}", digest)


class HostStore:
    """A :class:`~renewal_middleware.stores.base.SyncStore` shared through ``directory``."""

    local = False

    def __init__(self, directory: str, *, clock: Callable[[], float] = time.time) -> None:
        check_directory(directory)
        self.directory = directory
        self._clock = clock
        self._path = os.path.join(directory, "store.sqlite3")
        self._locks = os.path.join(directory, "locks")
        self._mutex = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        # Connections inherited over fork must be neither used nor closed by the child.
        self._inherited: list[sqlite3.Connection] = []
        self._purged = clock()
        try:
            os.makedirs(self._locks, mode=0o700, exist_ok=True)
            with self._transaction() as db:
                for statement in _SCHEMA:
                    db.execute(statement)
        except (OSError, sqlite3.Error, StoreUnavailable) as exc:
            raise refuse(directory, f"cannot be used: {exc}") from None

    def _connection_of_process(self) -> sqlite3.Connection:
        """This process's connection (mutex held): workers fork after the app is built."""
        if self._pid != os.getpid():
            self._drop_connection()
        if self._connection is None:
            # Created first so that the database (and its -wal and -shm files) is private.
            os.close(os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
            self._connection = sqlite3.connect(self._path, timeout=BUSY_TIMEOUT_MS / 1000,
                                               isolation_level=None, check_same_thread=False)
            self._pid = os.getpid()
            # Closed with the store when nobody called close() (in this process only).
            weakref.finalize(self, _close_in, self._pid, self._connection)
            self._connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._connection.execute("PRAGMA journal_mode = WAL")
            self._connection.execute("PRAGMA synchronous = NORMAL")
        return self._connection

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection, mutex held, in a write transaction when ``write``; errors
        become :class:`StoreUnavailable`."""
        with self._mutex:
            try:
                db = self._connection_of_process()
                if not write:
                    yield db
                    return
                db.execute("BEGIN IMMEDIATE")
                try:
                    yield db
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.rollback()
                    raise
            except (sqlite3.Error, OSError) as exc:
                self._drop_connection()  # the next call starts afresh
                raise StoreUnavailable(f"the host store failed: {exc}") from None

    def read(self, session_id: str) -> Lineage | None:
        with self._transaction(write=False) as db:
            row = db.execute("SELECT generation, sealed, ended FROM lineages"
                             " WHERE id = ? AND expires > ?",
                             (session_id, self._clock())).fetchone()
        if row is None:
            return None
        generation, sealed, ended = row
        if not isinstance(generation, int) or not isinstance(sealed, str):
            raise StoreUnavailable("the host store holds a malformed lineage")
        return Lineage(generation, sealed, bool(ended))

    def write(self, session_id: str, lineage: Lineage, ttl: float) -> None:
        now = self._clock()
        with self._transaction() as db:
            db.execute(_WRITE, (session_id, lineage.generation, lineage.sealed,
                                int(lineage.ended), now + ttl, now))
            self._purge(db, now)

    def lock(self, session_id: str, ttl: float, wait: float) -> FileLock | None:
        """Take the session's bucket lock (``ttl`` is moot: the kernel frees it on death)."""
        fd = open_bucket(self._locks, session_id)
        if flock_within(fd, fcntl.LOCK_EX, wait):
            return FileLock(fd, self._clock())
        return None

    def wait_released(self, session_id: str, wait: float) -> bool:
        """Wait for a shared lock on the session's bucket, and let it go at once: the
        kernel grants it to every waiter together when the holder releases or dies."""
        fd = open_bucket(self._locks, session_id)
        if not flock_within(fd, fcntl.LOCK_SH, wait):
            return False
        try:
            os.close(fd)  # frees the shared lock
        except OSError as exc:
            raise StoreUnavailable(f"the host store's lock release failed: {exc}") from None
        return True

    def release(self, lock: Lock) -> None:
        if not isinstance(lock, FileLock):
            raise TypeError(f"not a lock of this store: {lock!r}")
        try:
            lock.close()
        except OSError as exc:
            raise StoreUnavailable(f"the host store's lock release failed: {exc}") from None

    def bury(self, tombstones: Sequence[Tombstone], ttl: float) -> None:
        now = self._clock()
        expires = now + ttl
        with self._transaction() as db:
            for tombstone in tombstones:
                db.execute(_BURY, (tombstone.key, tombstone.at, expires))
                if tombstone.key.startswith("s:"):
                    db.execute(_END, {"id": tombstone.key[2:], "expires": expires, "now": now})
            self._purge(db, now)

    def tombstones(self, since: float) -> list[Tombstone]:
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT key, at FROM tombstones WHERE at >= ? AND expires > ?"
                              " ORDER BY at", (since, self._clock())).fetchall()
        return [Tombstone(str(key), float(at)) for key, at in rows]

    def claim(self, key: str, ttl: float) -> bool:
        now = self._clock()
        with self._transaction() as db:
            claimed = db.execute(_CLAIM, (key, now + ttl, now)).rowcount == 1
            self._purge(db, now)
        return claimed

    def close(self) -> None:
        with self._mutex:
            self._drop_connection()

    def _drop_connection(self) -> None:
        """Close this process's connection (mutex held); keep an inherited one open."""
        db, self._connection = self._connection, None
        if db is not None and self._pid != os.getpid():
            self._inherited.append(db)
        elif db is not None:
            with suppress(sqlite3.Error):
                db.close()

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        """Delete expired rows, at most once per :data:`PURGE_INTERVAL` (in a transaction)."""
        if now - self._purged < PURGE_INTERVAL:
            return
        self._purged = now
        for table in ("lineages", "tombstones", "claims"):
            db.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))


def _close_in(pid: int, db: sqlite3.Connection) -> None:
    if os.getpid() == pid:
        with suppress(sqlite3.Error):
            db.close()
