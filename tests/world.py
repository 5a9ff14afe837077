"""A tiny, complete "world" for tests: the embedded default at toy sizes, processed, plus paths.

Built once per session into a temp folder by the `world` fixture (conftest.py).
"""
from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
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
    tiny = load_tool("make_tiny_default")
    # the preset's student is 2 × 128; the tests' is the smaller 2 × 64, which every test's steps can afford
    paths = tiny.build_default(root, seed=0, n_train=400, n_dev=40, n_test=24, n_pretrain=50, vocab_size=800,
                               student=tiny.ModelShape(n_layer=2, n_head=2, n_embd=64))
    processed = root / "processed_data" / "tiny" / "full"
    status = load_tool("process_data_dolly").main([
        "--data-dir", str(paths["data"]), "--processed-data-dir", str(processed),
        "--model-path", str(paths["tokenizer"]), "--model-type", "tiny", "--dev-num", "40",
        "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--max-length", str(MAX_LENGTH)])
    assert status == 0, "processing the toy world failed"
    return World(root, paths["data"], processed / "tiny", paths["tokenizer"], paths["teacher"], paths["student"])


# A Python that has imported what every entrypoint imports (torch, transformers, DeepSpeed: ~8 s of
# start-up on 2 cores, most of a short test's time) and forks one child per single-rank run; the
# child runs the entrypoint as `python X.py` would (its own argv, environment, working folder and
# output files, `__main__`). One per test process, started at its first use; no thread pool
# exists in it before a fork (OMP_NUM_THREADS=1 while importing), so the children may start theirs.
ZYGOTE = r"""
import json, os, runpy, sys, traceback
reply = os.fdopen(os.dup(1), "w")  # the replies; what imports print goes to stderr
os.dup2(2, 1)
os.environ["OMP_NUM_THREADS"] = "1"
import deepspeed, torch, transformers  # noqa: F401
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401
import minillm.eval.evaluation, minillm.ppo.step, minillm.train.loop, minillm.train.setup  # noqa: F401
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.stdin = open(os.devnull)
        sys.argv = request["argv"]
        sys.path[0] = os.path.dirname(os.path.abspath(sys.argv[0]))
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 1))
        code = 0
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if not isinstance(stop.code, (int, type(None))):
                print(stop.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.exit(code)
    print(json.dumps({"pid": pid}), file=reply, flush=True)
    print(json.dumps({"status": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), file=reply, flush=True)
"""
_zygote: subprocess.Popen | None = None


def _run_forked(args: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    global _zygote
    if _zygote is None or _zygote.poll() is not None:
        _zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   text=True, cwd=REPO, env={**env, "PYTHONPATH": str(REPO)})
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        request = {"argv": args, "env": env, "cwd": str(REPO), "stdout": str(out), "stderr": str(err)}
        _zygote.stdin.write(json.dumps(request) + "\n")
        _zygote.stdin.flush()
        pid = json.loads(_zygote.stdout.readline())["pid"]
        ready, _, _ = select.select([_zygote.stdout], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        status = json.loads(_zygote.stdout.readline())["status"]
        if not ready:
            raise subprocess.TimeoutExpired(args, timeout, out.read_text(), err.read_text())
        return subprocess.CompletedProcess(args, status, out.read_text(errors="replace"), err.read_text(errors="replace"))


def run_entrypoint(args: list[str], ranks: int = 1, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run an entrypoint as a user would: `python X.py` for one rank (forked from a Python that has
    imported its dependencies, see ZYGOTE), the DeepSpeed launcher for several (one CPU thread per
    rank). Raises with the output on failure."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO),
           "OMP_NUM_THREADS": "1" if ranks > 1 else os.environ.get("OMP_NUM_THREADS", "2")}
    if ranks > 1:
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = ["deepspeed", "--num_gpus", str(ranks), "--master_port", str(port), *args]
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    else:
        command = ["python", *args]
        result = _run_forked(args, env, timeout)
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
