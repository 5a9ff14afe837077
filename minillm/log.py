"""Run logs: a human-readable `log.txt`, a machine-readable `log.jsonl`, tqdm progress.

Only rank 0 writes; on other ranks every method is a no-op, so callers never branch on rank.
"""
from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from minillm.fileio import atomic_write_text


class RunLogger:
    def __init__(self, run_dir: str | Path, rank: int = 0, name: str = "log"):
        self.enabled = rank == 0
        self.run_dir = Path(run_dir)
        self.start = time.time()
        self._text = self._jsonl = None
        self._bars: list[tqdm] = []  # a stack: validation's bar nests inside training's
        if self.enabled:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # Appending keeps the history of interrupted-and-resumed runs in one file.
            self._text = open(self.run_dir / f"{name}.txt", "a", buffering=1)
            self._jsonl = open(self.run_dir / f"{name}.jsonl", "a", buffering=1)

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {message}"
        self._text.write(line + "\n")
        (tqdm.write if self._bars else print)(line, file=sys.stdout)

    def metrics(self, record: dict[str, Any]) -> None:
        """One JSON object per logged step or evaluation, plus a readable line in log.txt."""
        if not self.enabled:
            return
        record = {**record, "elapsed_s": round(time.time() - self.start, 2)}
        self._jsonl.write(json.dumps(record) + "\n")
        self.info(" | ".join(f"{k} {_fmt(v)}" for k, v in record.items()))

    def drop_records_after(self, step: int) -> None:
        """A resumed run continues after `step`: records of later steps (written by a run killed
        before its next state was complete) go; at step 0 every record goes."""
        if not self.enabled:
            return
        self._jsonl.close()
        path = self.run_dir / "log.jsonl"
        kept = [line for line in path.read_text().splitlines(keepends=True)
                if step > 0 and json.loads(line).get("step", 0) <= step]
        atomic_write_text(path, "".join(kept))
        self._jsonl = open(path, "a", buffering=1)

    def config(self, config: dict[str, Any]) -> None:
        """Echo the full configuration at start, and keep it as `config.json` beside the logs."""
        if not self.enabled:
            return
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        self.info("config:\n" + text)
        atomic_write_text(self.run_dir / "config.json", text + "\n")

    def progress(self, total: int, initial: int = 0, desc: str = "train") -> None:
        if self.enabled:
            # Redirected to a file, a bar would add a line every tenth of a second.
            interval = 0.1 if sys.stdout.isatty() else 30.0
            self._bars.append(tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, mininterval=interval,
                                   file=sys.stdout, position=len(self._bars), leave=not self._bars))

    def advance(self, n: int = 1, **postfix: Any) -> None:
        if self._bars:
            self._bars[-1].update(n)
            if postfix:
                self._bars[-1].set_postfix({k: _fmt(v) for k, v in postfix.items()}, refresh=False)

    def close_progress(self) -> None:
        if self._bars:
            self._bars.pop().close()

    def close(self) -> None:
        while self._bars:
            self.close_progress()
        for handle in (self._text, self._jsonl):
            if handle is not None:
                handle.close()
        self._text = self._jsonl = None


def peak_memory_mib(device: torch.device) -> float:
    """CUDA: peak allocated since the last reset. CPU: the process's max RSS so far, which cannot be
    reset and includes Python, torch and every model."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
