"""A run folder belongs to one run: what may start or continue in it.

At start, `{save}/run.json` records the run's identity: every flag that changes what the run
computes, with each path flag replaced by a fingerprint of what it points to (data, tokenizer,
model, teacher, DeepSpeed config). Then:
  - a folder that already holds files is refused without --resume (--overwrite empties it first);
  - --resume compares the identity with the recorded one and refuses any difference, listing
    them; only the flags in RESUMABLE_CHANGES (how the run is watched and split, not what it
    computes) may change;
  - --resume in an empty or missing folder starts fresh (the comparison driver always passes it).

A run folder belongs to one live process: rank 0 holds an exclusive lock (flock) on
`{save}/run.lock` from the start of the run until its process ends, and writes its pid, host and
start time there. A start that finds the lock held is refused, naming the holder. The kernel
releases the lock of a process however it ends; a lock file left by a process that did not end
normally (killed) is taken over, and the log says so.
"""
from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minillm.data.manifest import DATA_MANIFEST
from minillm.fileio import atomic_write_json

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"  # not part of the run: kept when a fresh run empties the folder
# Flags a resumed run may change: they decide when it evaluates, logs or stops, how its global
# batch is split into micro-batches, how the sampler computes its tokens, and where files go; not
# the trajectory.
RESUMABLE_CHANGES = frozenset({"eval_interval", "log_interval", "stop_after_steps", "eval_batch_tokens",
                               "micro_batch_size", "max_nonfinite_steps", "compile_decode", "resume", "overwrite",
                               "local_rank", "save"})
# Path flags compared by the content they point to, not by their spelling.
FINGERPRINTED_PATHS = ("data_dir", "rationale_data_dir", "token_matched_to", "ptx_data_dir", "model_path", "tokenizer_path",
                       "teacher_model_path", "teacher_tokenizer", "deepspeed_config")
# Files up to this size are hashed; larger ones (weights, optimizer states) count by size, so that
# a start does not read gigabytes.
HASHED_FILE_BYTES = 1 << 20


@dataclass(frozen=True)
class RunFolderConfig:
    """The run folder (--save), what to do with what it holds (--resume / --overwrite), and every
    flag of the run by name (`flags`, what `run_identity` is made from)."""
    save: str
    resume: bool = False
    overwrite: bool = False
    flags: dict[str, Any] = field(default_factory=dict)


def fingerprint(path: str | Path | None) -> str | None:
    """sha256 of a file, or of a folder's data manifest when it has one, else of its file list
    (relative name, size, and the content hash of every file up to HASHED_FILE_BYTES)."""
    if path is None:
        return None
    path = Path(path)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return f"missing: {path}"
    if (path / DATA_MANIFEST).is_file():
        return hashlib.sha256((path / DATA_MANIFEST).read_bytes()).hexdigest()
    entries = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        size = file.stat().st_size
        content = hashlib.sha256(file.read_bytes()).hexdigest() if size <= HASHED_FILE_BYTES else None
        entries.append([str(file.relative_to(path)), size, content])
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def run_identity(flags: dict[str, Any]) -> dict:
    """What decides the run's results: flags (JSON values) and the fingerprints of path flags."""
    identity = {}
    for name, value in sorted(flags.items()):
        if name in RESUMABLE_CHANGES:
            continue
        identity[name] = fingerprint(value) if name in FINGERPRINTED_PATHS else json.loads(json.dumps(value, default=str))
    return identity


def identity_differences(recorded: dict, current: dict) -> list[str]:
    lines = []
    for name in sorted(recorded.keys() | current.keys()):
        before, after = recorded.get(name, "(absent)"), current.get(name, "(absent)")
        if before != after:
            flag = "--" + name.replace("_", "-")
            what = "content changed (fingerprint)" if name in FINGERPRINTED_PATHS else f"{before!r} -> {after!r}"
            lines.append(f"  {flag}: {what}")
    return lines


def check_run_folder(config: RunFolderConfig) -> str:
    """What to do with {save}: "fresh" (nothing there, or --overwrite), "continue" (--resume of
    the same run). Raises SystemExit with the reason when the folder belongs to another run.
    Reads only, so that every rank reaches the same verdict before rank 0 changes anything."""
    save = Path(config.save)
    held = sorted(p.name for p in save.iterdir() if p.name != LOCK_FILE) if save.is_dir() else []
    if config.overwrite or not held:
        return "fresh"
    if not config.resume:
        raise SystemExit(f"error: {save} already holds a run ({', '.join(held[:6])}{', ...' if len(held) > 6 else ''}); "
                         f"pass --resume to continue it or --overwrite to delete it and start again")
    run_file = save / RUN_FILE
    if not run_file.is_file():
        raise SystemExit(f"error: --resume: {save} holds files but no {RUN_FILE}, so nothing says which run they "
                         f"belong to; pass --overwrite to delete them and start again")
    differences = identity_differences(json.loads(run_file.read_text()), run_identity(config.flags))
    if differences:
        raise SystemExit(f"error: --resume: these settings differ from the run in {save} ({run_file}):\n"
                         + "\n".join(differences)
                         + f"\nresume with the recorded settings, or start a new run (another --save, or --overwrite); "
                           f"only {', '.join('--' + n.replace('_', '-') for n in sorted(RESUMABLE_CHANGES - {'resume', 'overwrite', 'local_rank', 'save'}))} may change")
    return "continue"


def claim_run_folder(config: RunFolderConfig, verdict: str) -> None:
    """Rank 0, after every rank has its verdict: empty the folder for a fresh run and record the
    identity."""
    save = Path(config.save)
    if verdict == "fresh" and save.is_dir():
        for path in save.iterdir():
            if path.name != LOCK_FILE:
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if not (save / RUN_FILE).is_file():
        atomic_write_json(save / RUN_FILE, run_identity(config.flags))


_held_locks: dict[str, int] = {}  # run folder (resolved) -> file descriptor of its lock, held by this process


def _read_holder(record: str) -> dict | None:
    """The pid, host and start time a lock file records (None: empty, or not written yet)."""
    try:
        holder = json.loads(record)
        return holder if {"pid", "host", "started"} <= holder.keys() else None
    except ValueError:
        return None


def _describe(holder: dict | None) -> str:
    return (f"pid {holder['pid']} on {holder['host']}, started {holder['started']}" if holder
            else "a process that has not written its pid yet")


def lock_run_folder(save: str | Path) -> str | None:
    """Rank 0: hold `{save}/run.lock` until this process ends (a process may start several runs in
    one folder, e.g. tests). Refuses (SystemExit) when another live process holds it, naming it;
    returns a note for the log when it takes over the lock of a process that did not end normally."""
    save = Path(save)
    save.mkdir(parents=True, exist_ok=True)
    key = str(save.resolve())
    if key in _held_locks:
        return None
    path = save / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _describe(_read_holder(path.read_text()))
        os.close(fd)
        raise SystemExit(f"error: {save} is being written by another live process ({holder}); a run folder belongs "
                         f"to one process: wait for it to end or stop it, or give another --save") from None
    previous = _read_holder(os.pread(fd, 1 << 16, 0).decode(errors="replace"))
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    _held_locks[key] = fd
    atexit.register(os.ftruncate, fd, 0)  # a normal end leaves an empty file: nothing to take over
    if previous and (previous["pid"], previous["host"]) != (me["pid"], me["host"]):
        return (f"took over {path} from {_describe(previous)}, which is no longer running (it did not end "
                f"normally: killed or lost?)")
    return None
