"""An exclusive lock that names its holder: one driver per WORK folder, one process per run folder.

    lock = HolderLock(work / ".driver.lock")
    stale = lock.acquire()        # raises LockHeld(holder) when a live process holds it
    ...
    lock.release()

The lock is an flock on the file, so the kernel releases it when its process dies, however it
dies: a lock left by a dead process is free, and `acquire` returns that process's description so
the caller can say it took the lock over. The file holds the holder's pid, host, start time and
command line, read by whoever finds the lock taken. (flock works between processes of one host;
on a network filesystem shared by several hosts, use one host per WORK folder.)
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path


class LockHeld(Exception):
    def __init__(self, path: Path, holder: dict):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by {describe(holder)}")


def describe(holder: dict) -> str:
    if not holder:
        return "another process (it wrote no description)"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started_at')}"
            + (f" ({holder.get('command')})" if holder.get("command") else ""))


class HolderLock:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.handle = None

    def acquire(self) -> dict | None:
        """Take the lock; returns the description a dead previous holder left (None if none).
        Raises LockHeld when a live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(handle)
            handle.close()
            raise LockHeld(self.path, holder) from None
        previous = _read(handle)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                                 "command": " ".join(sys.argv)}))
        handle.flush()
        self.handle = handle
        return previous or None

    def release(self) -> None:
        if self.handle is not None:
            self.handle.seek(0)
            self.handle.truncate()
            self.handle.flush()
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def _read(handle) -> dict:
    handle.seek(0)
    try:
        return json.loads(handle.read() or "{}")
    except json.JSONDecodeError:
        return {}
