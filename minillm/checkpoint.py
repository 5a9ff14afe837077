"""Checkpoints: atomic Hugging Face saves, the `best.json` file, and resumable training state.

Layout of a run folder:
  {run}/{step}/            HF model + tokenizer (loadable by from_pretrained), written atomically;
                           + task.json {"prompt_prefix": ...} when the model answers behind a task
                           prefix (step-by-step distillation), which evaluation then applies
  {run}/best.json          the best checkpoint by each tracked metric (later stages read this)
  {run}/resume/latest      DeepSpeed's pointer to the newest training state (optimizer,
  {run}/resume/step{N}/    scheduler, our client state, per-rank RNG); older states are pruned

`python -m minillm.checkpoint best RUN_DIR --by rougeL` prints the chosen checkpoint's path, so
shell scripts chain stages without hand-copying.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from minillm.fileio import atomic_directory, atomic_write_json

# Which direction is better for each metric that can pick a checkpoint.
METRIC_MODE = {"rougeL": "max", "valid_loss": "min", "accuracy": "max"}


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


TASK_FILE = "task.json"


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
    barrier()


def read_prompt_prefix(model_path: str | Path) -> str:
    """The task prefix a checkpoint was trained to answer behind ("" for a plain model)."""
    path = Path(model_path) / TASK_FILE
    return json.loads(path.read_text())["prompt_prefix"] if path.is_file() else ""


def read_best(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "best.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update_best(run_dir: str | Path, metrics: dict[str, float], step: int, checkpoint: str | Path) -> list[str]:
    """Record `checkpoint` for every tracked metric it improves; returns the improved names."""
    best = read_best(run_dir)
    improved = []
    for name, value in metrics.items():
        mode = METRIC_MODE.get(name)
        if mode is None or value is None:
            continue
        old = best.get(name)
        if old is None or (value > old["value"] if mode == "max" else value < old["value"]):
            best[name] = {"value": value, "step": step, "path": str(checkpoint)}
            improved.append(name)
    if improved:
        atomic_write_json(Path(run_dir) / "best.json", best)
    return improved


def best_checkpoint(run_dir: str | Path, by: str) -> Path:
    best = read_best(run_dir)
    if by not in best:
        raise FileNotFoundError(f"{run_dir}/best.json has no entry for {by!r} "
                                f"(has: {sorted(best) or 'no file'}); did the run evaluate?")
    return Path(best[by]["path"])


def resolve_checkpoint(path: str | Path, by: str) -> Path:
    """A training run folder (it has best.json) means its best checkpoint by `by`; any other
    folder is taken as a model folder."""
    path = Path(path)
    return best_checkpoint(path, by) if (path / "best.json").is_file() else path


def save_training_state(engine, run_dir: str | Path, step: int, client_state: dict, rank: int,
                        rank_state: dict | None = None) -> None:
    """Collective. DeepSpeed writes the tag folder before updating `latest`, so a crash while
    saving leaves the previous state in force; only then are older states removed.
    `rank_state` is this rank's own (e.g. its share of MiniLLM's rollouts), saved with its RNG."""
    resume_dir = Path(run_dir) / "resume"
    tag = f"step{step}"
    engine.save_checkpoint(str(resume_dir), tag=tag, client_state=client_state)
    torch.save({"rng": _rng_state(), **(rank_state or {})}, resume_dir / tag / f"rank{rank}.pt")
    barrier()
    if rank == 0:
        for old in resume_dir.glob("step*"):
            if old.name != tag:
                shutil.rmtree(old, ignore_errors=True)
    barrier()


def load_training_state(engine, run_dir: str | Path, rank: int) -> tuple[dict, dict] | None:
    """Restore the newest training state if there is one (weights, optimizer, scheduler, RNG);
    returns its client state and this rank's own state."""
    resume_dir = Path(run_dir) / "resume"
    if not (resume_dir / "latest").exists():
        return None
    tag = (resume_dir / "latest").read_text().strip()
    load_path, client_state = engine.load_checkpoint(str(resume_dir), tag=tag)
    if load_path is None:
        raise RuntimeError(f"{resume_dir}/{tag}: the training state named by 'latest' could not be loaded")
    rank_state = torch.load(resume_dir / tag / f"rank{rank}.pt", weights_only=False)
    _set_rng_state(rank_state.pop("rng"))
    return client_state, rank_state


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
