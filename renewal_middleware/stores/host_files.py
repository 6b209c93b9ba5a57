"""The files of the host store: its private directory, and ``flock`` on its bucket files.

A renewal lock is an exclusive ``flock`` on one of the bucket files; waiting for its
release is a shared one, which the kernel grants to every waiter at once when the
holder releases it or dies. A blocking ``flock`` runs in a helper thread so that a
wait is bounded without polling.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import stat
import threading
from contextlib import suppress

from ..errors import ConfigurationError
from .base import StoreUnavailable

SETTING = "setting 'store_directory' (RENEWAL_STORE_DIRECTORY)"


def refuse(directory: str, why: str) -> ConfigurationError:
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


def check_directory(directory: str) -> None:
    """Refuse a directory other users could tamper with (they could forge sessions)."""
    try:
        _make_private(directory)
        info = os.stat(directory)
        parent = os.stat(os.path.dirname(os.path.abspath(directory)))
    except OSError as exc:
        raise refuse(directory, f"cannot be created: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise refuse(directory, "is not a directory")
    if info.st_uid != os.getuid():
        raise refuse(directory, f"belongs to uid {info.st_uid}, not {os.getuid()}")
    if info.st_mode & 0o022:
        raise refuse(directory, "is writable by other users (chmod 700 it)")
    # Whoever may rename entries of the parent could swap the directory.
    if parent.st_uid not in (0, os.getuid()) or (
            parent.st_mode & 0o022 and not parent.st_mode & stat.S_ISVTX):
        raise refuse(directory, "is inside a directory other users may change")


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


def open_bucket(locks: str, session_id: str) -> int:
    """A new descriptor of the session's bucket file in the directory ``locks``."""
    bucket = hashlib.sha256(session_id.encode()).hexdigest()[:2]
    try:
        return os.open(os.path.join(locks, f"{bucket}.lock"),
                       os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreUnavailable(f"the host store's lock file failed: {exc}") from None


class _Attempt:
    """A blocking ``flock`` in a helper thread, which the waiter may give up on."""

    def __init__(self, fd: int, operation: int) -> None:
        self.fd = fd
        self.operation = operation
        self.done = threading.Event()
        self.mutex = threading.Lock()
        self.acquired = False
        self.abandoned = False
        self.error: OSError | None = None

    def run(self) -> None:
        try:
            fcntl.flock(self.fd, self.operation)
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


def flock_within(fd: int, operation: int, wait: float) -> bool:
    """Take ``flock(fd, operation)`` (``LOCK_EX`` or ``LOCK_SH``) within ``wait`` seconds.

    ``True``: taken, and ``fd`` is still the caller's. ``False``: not within ``wait``,
    and ``fd`` is no longer the caller's (it is closed, at once or once a helper thread
    gets the lock). Fails with :class:`StoreUnavailable`, ``fd`` closed.
    """
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    except OSError as exc:
        os.close(fd)
        raise StoreUnavailable(f"the host store's lock failed: {exc}") from None
    if wait <= 0:
        os.close(fd)
        return False
    attempt = _Attempt(fd, operation)
    threading.Thread(target=attempt.run, name="renewal-store-flock", daemon=True).start()
    try:
        return attempt.wait(wait)
    except OSError as exc:
        raise StoreUnavailable(f"the host store's lock failed: {exc}") from None
