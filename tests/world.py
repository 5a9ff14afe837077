"""A tiny, complete "world" for tests: the embedded default at toy sizes, processed, plus paths.

Built once per session into a temp folder by the `world` fixture (conftest.py).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MAX_LENGTH, MAX_PROMPT_LENGTH = 160, 96


def load_tool(name: str):
    """Import tools/<name>.py (tools/ is a folder of scripts, not a package), once per process: a
    second module object under the same name would break pickling the first one's functions (for
    worker processes) in whichever test file loaded it first."""
    if f"tools_{name}" in sys.modules:
        return sys.modules[f"tools_{name}"]
    spec = importlib.util.spec_from_file_location(f"tools_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class World:
    root: Path
    data: Path  # raw jsonl folder (raw.jsonl, valid.jsonl = test split)
    processed: Path  # processed full data (train_0/valid_0)
    tokenizer: Path
    teacher: Path
    student: Path


def build_world(root: Path) -> World:
    paths = load_tool("make_tiny_default").build_default(root, seed=0, n_train=400, n_dev=40, n_test=24,
                                                         n_pretrain=50, vocab_size=800)
    processed = root / "processed_data" / "tiny" / "full"
    status = load_tool("process_data_dolly").main([
        "--data-dir", str(paths["data"]), "--processed-data-dir", str(processed),
        "--model-path", str(paths["tokenizer"]), "--model-type", "tiny", "--dev-num", "40",
        "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--max-length", str(MAX_LENGTH)])
    assert status == 0, "processing the toy world failed"
    return World(root, paths["data"], processed / "tiny", paths["tokenizer"], paths["teacher"], paths["student"])


def run_entrypoint(args: list[str], ranks: int = 1, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run an entrypoint as a user would: `python X.py` for one rank, the DeepSpeed launcher
    for several (one CPU thread per rank). Raises with the output on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1" if ranks > 1 else os.environ.get("OMP_NUM_THREADS", "2")}
    if ranks > 1:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = ["deepspeed", "--num_gpus", str(ranks), "--master_port", str(port), *args]
    else:
        command = [sys.executable, *args]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def token_training_args(entry: str, world: World, model: Path, save: Path, steps: int, *extra: str) -> list[str]:
    """A short, deterministic (dropout off) token-level run on the toy world."""
    return [entry, "--model-path", str(model), "--data-dir", str(world.processed), "--save", str(save),
            "--max-length", str(MAX_LENGTH), "--max-prompt-length", str(MAX_PROMPT_LENGTH),
            "--batch-size", "16", "--micro-batch-size", "16", "--lr", "3e-3", "--total-steps", str(steps),
            "--eval-interval", str(steps), "--eval-gen-num", "-1", "--log-interval", "5", "--dropout", "0",
            "--deepspeed-config", "configs/deepspeed/zero1_fp32.json", *extra]


def sft_run(world: World, model: Path, save: Path, steps: int) -> Path:
    run_entrypoint(token_training_args("train_sft.py", world, model, save, steps))
    return save
