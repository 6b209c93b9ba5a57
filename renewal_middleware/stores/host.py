"""The store shared by every worker process of one host: SQLite plus ``flock`` lock files.

Lineages, tombstones and claims live in an SQLite database in WAL mode (readers
never wait for the writer). Renewal locks are ``flock`` locks on 256 bucket files:
the kernel wakes a blocked ``flock`` as soon as the holder releases it, or dies,
so a killed worker never leaves a session locked.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress

from ..errors import ConfigurationError
from .base import Lineage, Lock, StoreUnavailable, Tombstone

#: Expired rows are deleted at most this often (seconds of the store's clock).
PURGE_INTERVAL = 60.0
BUSY_TIMEOUT_MS = 5000
SETTING = "setting 'store_directory' (RENEWAL_STORE_DIRECTORY)"

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


def _refuse(directory: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"{SETTING}: the host store directory {directory!r} {why}")


def _make_private(directory: str) -> None:
    """Create ``directory`` and any missing parents with mode 0o700."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        with suppress(FileExistsError):  # another worker of this host made it meanwhile
            os.mkdir(path, 0o700)


def _check_directory(directory: str) -> None:
    """Refuse a directory other users could tamper with (they could forge sessions)."""
    try:
        _make_private(directory)
        info = os.stat(directory)
        parent = os.stat(os.path.dirname(os.path.abspath(directory)))
    except OSError as exc:
        raise _refuse(directory, f"cannot be created: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise _refuse(directory, "is not a directory")
    if info.st_uid != os.getuid():
        raise _refuse(directory, f"belongs to uid {info.st_uid}, not {os.getuid()}")
    if info.st_mode & 0o022:
        raise _refuse(directory, "is writable by other users (chmod 700 it)")
    # Whoever may rename entries of the parent could swap the directory.
    if parent.st_uid not in (0, os.getuid()) or (
            parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX):
        raise _refuse(directory, "is inside a directory other users may change")


@dataclasses.dataclass(eq=False)
class FileLock:
    """A renewal lock held as ``flock`` on an open bucket file (closing frees it)."""

    fd: int | None
    acquired_at: float
    _mutex: threading.Lock = dataclasses.field(default_factory=threading.Lock, init=False,
                                               repr=False)

    def close(self) -> None:
        with self._mutex:  # a second close must not close a reused descriptor number
            fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


class _Attempt:
    """A blocking ``flock`` in a helper thread, which the waiter may give up on."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.done = threading.Event()
        self.mutex = threading.Lock()
        self.acquired = False
        self.abandoned = False
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError as exc:
            self.error = exc
        with self.mutex:
            if self.abandoned or self.error is not None:
                os.close(self.fd)  # the waiter has gone: let the next one have it
            else:
                self.acquired = True
        self.done.set()

    def wait(self, timeout: float) -> bool:
        """``True`` when the lock was taken within ``timeout``; else the thread frees it."""
        self.done.wait(timeout)
        with self.mutex:
            if self.error is not None:
                raise self.error
            if not self.acquired:
                self.abandoned = True
            return self.acquired


class HostStore:
    """A :class:`~renewal_middleware.stores.base.SyncStore` shared through ``directory``."""

    local = False

    def __init__(self, directory: str, *, clock: Callable[[], float] = time.time) -> None:
        _check_directory(directory)
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
            raise _refuse(directory, f"cannot be used: {exc}") from None

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
        bucket = hashlib.sha256(session_id.encode()).hexdigest()[:2]
        try:
            fd = os.open(os.path.join(self._locks, f"{bucket}.lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"the host store's lock file failed: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return self._wait_for(fd, wait)
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailable(f"the host store's lock failed: {exc}") from None
        return FileLock(fd, self._clock())

    def _wait_for(self, fd: int, wait: float) -> FileLock | None:
        """Block on ``flock`` in a helper thread so that ``wait`` bounds it without polling."""
        if wait <= 0:
            os.close(fd)
            return None
        attempt = _Attempt(fd)
        threading.Thread(target=attempt.run, name="renewal-store-flock", daemon=True).start()
        try:
            acquired = attempt.wait(wait)
        except OSError as exc:
            raise StoreUnavailable(f"the host store's lock failed: {exc}") from None
        return FileLock(fd, self._clock()) if acquired else None

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
