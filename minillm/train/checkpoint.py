"""Checkpoints: atomic Hugging Face saves, the `best.json` file, and resumable training state.

Layout of a run folder:
  {run}/{step}/            HF model + tokenizer (loadable by from_pretrained), written atomically;
                           + task.json {"prompt_prefix": ...} when the model answers behind a task
                           prefix (step-by-step distillation), which evaluation then applies
  {run}/best.json          the best checkpoint by each tracked metric (later stages read this):
                           {metric: {value, step, path, valid_loss}}, `path` relative to {run} (older
                           files hold absolute paths, read as they are). Ties: see `_better`
  {run}/resume/step{N}/    a training state: DeepSpeed's files (weights, optimizer, scheduler,
                           our client state), our rank{r}.pt (RNG, rank-local state; tensors and
                           plain values only) and manifest.json (sha256 of every other file)
  {run}/resume/latest      the tag of the newest COMPLETE state: moved only after every rank's
                           files and the manifest exist; older states are then pruned

Save order at an evaluation step (each phase is a point where a kill may land; `--resume` always
continues from the newest complete state): model folder, best.json, DeepSpeed's files, rank files,
manifest, pointer, pruning. `save_phase_hook` lets tests stop a run at any of these phases.

`python -m minillm.train.checkpoint best RUN_DIR --by rougeL` prints the chosen checkpoint's path, so
shell scripts chain stages without hand-copying.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import random
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from minillm.fileio import (
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
)

# Which direction is better for each metric that can pick a checkpoint.
METRIC_MODE = {"rougeL": "max", "valid_loss": "min", "accuracy": "max"}
TIE_RULE = "equal values: the lower validation loss, then the later step"


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


TASK_FILE = "task.json"
MANIFEST_FILE = "manifest.json"
SAVE_PHASES = ("model_written", "model_saved", "best_updated", "engine_state_written", "rank_state_written",
               "pointer_moved")
# Called as hook(phase, step) at each phase of a save (None in normal runs): fault-injection tests
# raise from it to stop a run exactly there.
save_phase_hook: Callable[[str, int], None] | None = None


def _reached(phase: str, step: int) -> None:
    if save_phase_hook is not None:
        save_phase_hook(phase, step)


def save_hf_checkpoint(engine, tokenizer, path: str | Path, is_main: bool, prompt_prefix: str = "") -> None:
    """Collective: every rank calls it (ZeRO-3 gathers the sharded weights first)."""
    stage = engine.zero_optimization_stage() if hasattr(engine, "zero_optimization_stage") else 0
    state_dict = engine._zero3_consolidated_16bit_state_dict() if stage == 3 else None
    if is_main:
        model = engine.module if hasattr(engine, "module") else engine
        with atomic_directory(path) as tmp:
            model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            if prompt_prefix:
                atomic_write_json(Path(tmp) / TASK_FILE, {"prompt_prefix": prompt_prefix})
            _reached("model_written", int(Path(path).name))
    barrier()
    _reached("model_saved", int(Path(path).name))


def read_prompt_prefix(model_path: str | Path) -> str:
    """The task prefix a checkpoint was trained to answer behind ("" for a plain model)."""
    path = Path(model_path) / TASK_FILE
    return json.loads(path.read_text())["prompt_prefix"] if path.is_file() else ""


def read_best(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "best.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update_best(run_dir: str | Path, metrics: dict[str, float], step: int, checkpoint: str | Path) -> list[str]:
    """Record `checkpoint` for every tracked metric it improves; returns the improved names.
    A NaN or infinite value is never a candidate (NaN compares false both ways, so it could
    become "best" only by being first, which is exactly the broken run to refuse)."""
    best = read_best(run_dir)
    improved = _improve(best, metrics, step, Path(run_dir), checkpoint)
    if improved:
        atomic_write_json(Path(run_dir) / "best.json", best)
    _reached("best_updated", step)
    return improved


def _better(mode: str, value: float, valid_loss: float | None, step: int, old: dict) -> bool:
    """Whether a checkpoint beats the recorded one by its metric value; on equal values (e.g. every
    Rouge-L 0.0 early in training) the lower validation loss wins, then the later step (TIE_RULE).
    A missing validation loss (MiniLLM logs none) counts as the worst."""
    if value != old["value"]:
        return value > old["value"] if mode == "max" else value < old["value"]
    loss, old_loss = (math.inf if v is None else v for v in (valid_loss, old.get("valid_loss")))
    return loss < old_loss or (loss == old_loss and step > old["step"])


def _improve(best: dict, metrics: dict[str, float], step: int, run_dir: Path, checkpoint: str | Path) -> list[str]:
    improved = []
    valid_loss = metrics.get("valid_loss")
    if valid_loss is not None and not math.isfinite(valid_loss):
        valid_loss = None
    for name, value in metrics.items():
        mode = METRIC_MODE.get(name)
        if mode is None or value is None or not math.isfinite(value):
            continue
        old = best.get(name)
        if old is None or _better(mode, value, valid_loss, step, old):
            # Relative to the run folder, so that the folder can be moved or renamed whole.
            best[name] = {"value": value, "step": step, "path": os.path.relpath(checkpoint, run_dir),
                          "valid_loss": valid_loss}
            improved.append(name)
    return improved


def rebuild_best(run_dir: str | Path, history: list[dict]) -> None:
    """best.json from a resumed state's evaluation records: entries written after that state
    (by a run killed before its next state was complete) must not survive the resume."""
    best: dict = {}
    for record in history:
        _improve(best, record, record["step"], Path(run_dir), Path(run_dir) / str(record["step"]))
    path = Path(run_dir) / "best.json"
    if best:
        atomic_write_json(path, best)
    elif path.exists():
        path.unlink()


def best_checkpoint(run_dir: str | Path, by: str) -> Path:
    """The checkpoint best.json records for `by` (a path relative to the run folder; an absolute
    one, as older files hold, is taken as it is)."""
    best = read_best(run_dir)
    if by not in best:
        raise FileNotFoundError(f"{run_dir}/best.json has no entry for {by!r} "
                                f"(has: {sorted(best) or 'no file'}); did the run evaluate?")
    return Path(run_dir) / best[by]["path"]


def resolve_checkpoint(path: str | Path, by: str) -> Path:
    """A training run folder (it has best.json) means its best checkpoint by `by`; any other
    folder is taken as a model folder."""
    path = Path(path)
    return best_checkpoint(path, by) if (path / "best.json").is_file() else path


def save_training_state(engine, run_dir: str | Path, step: int, client_state: dict, rank: int,
                        rank_state: dict | None = None) -> None:
    """Collective. Every rank writes its files into resume/step{N}; then rank 0 writes the
    manifest and only then moves `latest`, so a kill at any point leaves the previous complete
    state in force; older states are removed last. `rank_state` is this rank's own (e.g. its share
    of MiniLLM's rollouts: tensors, numbers, strings, lists and dicts), saved with its RNG."""
    resume_dir = Path(run_dir) / "resume"
    tag = f"step{step}"
    engine.save_checkpoint(str(resume_dir), tag=tag, client_state=client_state, save_latest=False)
    _reached("engine_state_written", step)
    torch.save({"rng": _rng_state(), **(rank_state or {})}, resume_dir / tag / f"rank{rank}.pt")
    barrier()
    _reached("rank_state_written", step)
    if rank == 0:
        write_manifest(resume_dir / tag)
        atomic_write_text(resume_dir / "latest", tag)
    barrier()
    _reached("pointer_moved", step)
    if rank == 0:
        for old in resume_dir.glob("step*"):
            if old.name != tag:
                shutil.rmtree(old, ignore_errors=True)
    barrier()


def write_manifest(folder: Path) -> None:
    """sha256 of every file under `folder` (but the manifest), as manifest.json."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
    atomic_write_json(folder / MANIFEST_FILE, {str(p.relative_to(folder)): file_sha256(p) for p in files})


def manifest_problem(folder: Path, world_size: int) -> str | None:
    """Why the state in `folder` cannot be trusted to be the complete one we wrote (None: it can):
    no manifest, a file missing, added or changed since, or no rank file for some rank."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        return f"{manifest_path} is missing (the save did not finish)"
    try:
        expected = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        return f"{manifest_path}: unreadable ({err})"
    found = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE}
    ranks = {f"rank{r}.pt" for r in range(world_size)}
    if ranks - set(expected):
        return f"{folder}: no {', '.join(sorted(ranks - set(expected)))} (saved by another world size?)"
    if found != set(expected):
        extra, missing = sorted(found - set(expected)), sorted(set(expected) - found)
        return f"{folder}: files differ from {MANIFEST_FILE} (added: {extra or 'none'}, missing: {missing or 'none'})"
    for name, digest in expected.items():
        if file_sha256(folder / name) != digest:
            return f"{folder / name}: sha256 differs from {MANIFEST_FILE} (changed after the save)"
    return None


@dataclass
class RestoredState:
    client_state: dict
    rank_state: dict
    step_dir: Path


def _step_number(folder: Path) -> int:
    return int(folder.name.removeprefix("step"))


def find_complete_state(run_dir: str | Path, world_size: int) -> tuple[Path | None, list[str]]:
    """The newest complete training state under {run}/resume, and why any newer one was passed
    over. Completeness is checked, not inferred from `latest` (which names the same state when
    the last save finished), so a state damaged after its save is passed over too."""
    resume_dir = Path(run_dir) / "resume"
    candidates = sorted((p for p in resume_dir.glob("step*") if re.fullmatch(r"step\d+", p.name) and p.is_dir()),
                        key=_step_number, reverse=True)
    notes = []
    for folder in candidates:
        problem = manifest_problem(folder, world_size)
        if problem is None:
            return folder, notes
        notes.append(f"passed over {folder.name}: {problem}")
    return None, notes


def load_training_state(engine, run_dir: str | Path, rank: int,
                        world_size: int) -> tuple[RestoredState | None, list[str]]:
    """Restore the newest complete training state if there is one (weights, optimizer, scheduler,
    RNG), and say why any newer one was passed over. DeepSpeed's own files need pickle
    (weights_only=False), so they are loaded only after the folder matched its sha256 manifest;
    our rank files load with weights_only=True."""
    step_dir, notes = find_complete_state(run_dir, world_size)
    if step_dir is None:
        return None, notes
    load_path, client_state = engine.load_checkpoint(str(step_dir.parent), tag=step_dir.name)
    if load_path is None:
        raise RuntimeError(f"{step_dir}: DeepSpeed could not load this training state")
    rank_file = step_dir / f"rank{rank}.pt"
    try:
        rank_state = torch.load(rank_file, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{rank_file}: refused: it holds not only tensors and plain values, so this code did not "
                         f"write it ({str(err).splitlines()[0]})") from None
    _set_rng_state(rank_state.pop("rng"))
    return RestoredState(client_state, rank_state, step_dir), notes


def discard_after(run_dir: str | Path, step: int, history: list[dict], rank: int) -> None:
    """After resuming at `step` with evaluation `history`: remove the model folders and training
    states a killed run wrote beyond it, and rebuild best.json, so the folder holds one trajectory."""
    if rank == 0:
        run_dir = Path(run_dir)
        for folder in run_dir.iterdir():
            if folder.is_dir() and folder.name.isdigit() and int(folder.name) > step:
                shutil.rmtree(folder)
        for folder in (run_dir / "resume").glob("step*"):
            if folder.is_dir() and _step_number(folder) > step:
                shutil.rmtree(folder)
        rebuild_best(run_dir, history)
    barrier()


def remove_stale_temporaries(run_dir: str | Path) -> list[Path]:
    """Temporary files and folders of atomic writes (hidden `.NAME.*`) that a killed run left in
    the run folder or its resume folder; returns what was removed."""
    removed = []
    for folder in (Path(run_dir), Path(run_dir) / "resume"):
        if not folder.is_dir():
            continue
        for path in folder.glob(".*"):
            if re.fullmatch(r"\..+\.([0-9a-f]{32}\.tmp|[a-z0-9_]{8})", path.name):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                removed.append(path)
    return removed


def _rng_state() -> dict:
    """Every generator's state as tensors and plain values (loadable with weights_only=True)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    best = sub.add_parser("best", help="print the path of a run's best checkpoint")
    best.add_argument("run_dir")
    best.add_argument("--by", default="rougeL", choices=sorted(METRIC_MODE))
    resolve = sub.add_parser("resolve", help="a run folder -> its best checkpoint; a model folder -> itself")
    resolve.add_argument("run_dir", metavar="path")
    resolve.add_argument("--by", default="rougeL", choices=sorted(METRIC_MODE))
    args = parser.parse_args(argv)
    pick = best_checkpoint if args.command == "best" else resolve_checkpoint
    try:
        print(pick(args.run_dir, args.by))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
