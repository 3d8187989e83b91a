"""An advisory lock beside a file, for writers in other processes and on other workstations.

The lock is a file created with ``O_CREAT | O_EXCL``: creating it either
succeeds for exactly one writer or fails, on local disks and on network
shares alike (NFS v3+, SMB), where ``flock`` may only lock the local machine.
It holds the owner's host, process id and a random token.

A writer that dies holding the lock (killed, crashed, power cut) must not
block the study for ever, so a lock is *stale* when its process is known dead
(same host) or when it is older than :data:`STALE_S` (any host: holding it
only ever takes the milliseconds of one small write; the age is read from the
file's modification time, so clocks of workstations sharing a folder must agree
to within that). A stale lock is first
renamed to a unique name, so that of two writers breaking it only one does,
and it is put back if it turns out to have been replaced by a fresh one.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path

HOST = socket.gethostname()
STALE_S = 30.0
WAIT_S = 10.0


class LockTimeout(Exception):
    """Another writer held the lock for longer than the wait allowed (and it is not stale)."""


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` of this machine runs (or cannot be checked)."""
    if sys.platform == "win32":
        return True  # os.kill(pid, 0) would terminate it there; age alone decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def break_if_stale(lock: Path, stale_s: float | None = None) -> bool:
    """Remove ``lock`` when its owner is gone; True when there is no lock any more."""
    stale_s = STALE_S if stale_s is None else stale_s
    try:
        text = lock.read_text(encoding="utf-8", errors="replace")
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        info = json.loads(text)
    except ValueError:
        info = {}  # being written right now, or damaged: only its age can tell
    pid = info.get("pid") if isinstance(info, dict) else None
    dead = isinstance(info, dict) and info.get("host") == HOST and isinstance(pid, int) \
        and pid != os.getpid() and not pid_alive(pid)
    if not dead and age <= stale_s:
        return False
    grave = lock.with_name(f"{lock.name}.stale.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        os.rename(lock, grave)
    except FileNotFoundError:
        return True  # another writer broke it first
    except OSError:
        return False
    try:
        if grave.read_text(encoding="utf-8", errors="replace") != text:
            # Between reading and renaming, the stale lock was broken and a live writer took a new
            # one: that one is not ours to break. Put it back unless yet another lock exists.
            try:
                os.link(grave, lock)
            except OSError:
                pass
    finally:
        grave.unlink(missing_ok=True)
    return True


class FileLock:
    """``with FileLock(path):`` holds ``path`` (the lock file itself) until the block ends."""

    def __init__(self, path: Path, wait_s: float | None = None, stale_s: float | None = None):
        self.path = Path(path)
        self.wait_s = WAIT_S if wait_s is None else wait_s
        self.stale_s = stale_s
        self.token = secrets.token_hex(8)

    def __enter__(self) -> "FileLock":
        deadline = time.monotonic() + self.wait_s
        delay = 0.001
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                if break_if_stale(self.path, self.stale_s):
                    continue
                if time.monotonic() > deadline:
                    raise LockTimeout(str(self.path)) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.01)  # saves take milliseconds: look again soon
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"host": HOST, "pid": os.getpid(), "token": self.token, "time": time.time()}, fh)
            except BaseException:
                self.path.unlink(missing_ok=True)  # an empty lock would block the file until it is stale
                raise
            return self

    def __exit__(self, *exc) -> None:
        # Remove only our own lock: one held past STALE_S may have been broken and retaken.
        try:
            if json.loads(self.path.read_text(encoding="utf-8")).get("token") == self.token:
                self.path.unlink()
        except (OSError, ValueError, AttributeError):
            pass
