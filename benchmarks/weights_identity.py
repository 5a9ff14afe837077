"""Do two checkouts train the same weights? Short runs of the on-policy and GKD entrypoints on the
tiny data, each reported as the sha256 of its final weights and its last evaluation.

  python benchmarks/weights_identity.py --code /path/to/checkout --tiny ROOT --out DIR [--also ...]

Run it once per checkout (`--code`: the repository whose entrypoints run, with PYTHONPATH set to
it; default this one) and compare the printed hashes: equal hashes mean bit-identical training,
and then identical evaluations. The runs (one process, one torch thread, ZeRO-1 fp32, seed 10):
  minillm  train_minillm.py, MiniLLM's recipe: 4 steps = 1 collection of 32 rollouts (α 0.2),
           2 PPO epochs of mini-batches of 16, pretraining term with KD to the teacher
  opd      train_minillm.py --recipe opd: 3 steps of 16 rollouts (α 0), pretraining term
  gkd      train_kd.py --gkd-lambda 0.5 (JSD β 0.5, kd-ratio 1): 4 steps of 16, corpus term
  sft, kd  train_sft.py; train_kd.py (forward KL, kd-ratio 0.5): 4 steps of 16
each evaluated at its last step on 16 validation prompts (sampled Rouge-L, validation loss).
`--also NAME RUN "FLAGS"` adds RUN again under NAME with extra FLAGS (e.g. a flag that selects
another code path of the same checkout).

ROOT holds what tools/make_tiny_default.py and the processing step make, and a teacher:
  ROOT/checkpoints/tiny-student            the student (tools/make_tiny_default.py --root ROOT)
  ROOT/runs/teacher                        a train_sft.py run folder of the tiny teacher
  ROOT/processed/{full,prompt}/tiny        tools/process_data_dolly.py (--max-length 128 --max-prompt-length 80)
  ROOT/processed/pretrain/tiny             tools/process_data_pretrain.py (--chunk-length 128)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMON = ["--deepspeed-config", "configs/deepspeed/zero1_fp32.json", "--max-length", "128",
          "--max-prompt-length", "80", "--lr", "5e-4", "--warmup-steps", "0", "--seed", "10",
          "--eval-gen-num", "16", "--log-interval", "1"]


def runs(tiny: Path) -> dict[str, list[str]]:
    student, teacher = tiny / "checkpoints/tiny-student", tiny / "runs/teacher"
    prompts, full, corpus = (tiny / f"processed/{name}/tiny" for name in ("prompt", "full", "pretrain"))
    on_policy = ["train_minillm.py", "--model-path", str(student), "--teacher-model-path", str(teacher),
                 "--data-dir", str(prompts), "--ptx-data-dir", str(corpus)]
    return {
        "minillm": on_policy + ["--total-steps", "4", "--eval-interval", "4", "--num-rollouts", "32", "--batch-size",
                                "16", "--micro-batch-size", "16", "--ppo-epochs", "2", "--rollout-batch-size", "16"],
        "opd": on_policy + ["--recipe", "opd", "--total-steps", "3", "--eval-interval", "3", "--batch-size", "16",
                            "--micro-batch-size", "16", "--rollout-batch-size", "16", "--teacher-mix-alpha", "0"],
        "sft": ["train_sft.py", "--model-path", str(student), "--data-dir", str(full), "--total-steps", "4",
                "--eval-interval", "4", "--batch-size", "16", "--micro-batch-size", "16"],
        "kd": ["train_kd.py", "--model-path", str(student), "--teacher-model-path", str(teacher), "--data-dir",
               str(full), "--kd-ratio", "0.5", "--total-steps", "4", "--eval-interval", "4", "--batch-size", "16",
               "--micro-batch-size", "16"],
        "gkd": ["train_kd.py", "--model-path", str(student), "--teacher-model-path", str(teacher), "--data-dir",
                str(full), "--kd-ratio", "1", "--kd-loss", "js_divergence", "--jsd-beta", "0.5", "--gkd-lambda", "0.5",
                "--total-steps", "4", "--eval-interval", "4", "--batch-size", "16", "--micro-batch-size", "16",
                "--lr-scheduler", "constant", "--ptx-data-dir", str(corpus), "--ptx-kd-ratio", "0.5"],
    }


def weights_sha256(checkpoint: Path) -> str:
    """Over the tensors' names, dtypes, shapes and bytes in name order (not the file: its header
    may order or pad them differently)."""
    digest = hashlib.sha256()
    tensors = load_file(checkpoint / "model.safetensors")
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name} {tensor.dtype} {tuple(tensor.shape)}".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=REPO_ROOT, help="the checkout to run (default: this one)")
    parser.add_argument("--tiny", type=Path, required=True, help="the tiny data root (see above)")
    parser.add_argument("--out", type=Path, required=True, help="run folders go here (overwritten)")
    parser.add_argument("--runs", nargs="+", default=["sft", "kd", "minillm", "opd", "gkd"])
    parser.add_argument("--also", nargs=3, action="append", default=[], metavar=("NAME", "RUN", "FLAGS"))
    args = parser.parse_args(argv)
    commands = runs(args.tiny.resolve())
    selected = {name: commands[name] for name in args.runs}
    selected.update({name: commands[run] + shlex.split(flags) for name, run, flags in args.also})
    env = {**os.environ, "PYTHONPATH": str(args.code.resolve()), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name, command in selected.items():
        save = args.out.resolve() / name
        result = subprocess.run([sys.executable, *command, *COMMON, "--save", str(save), "--overwrite"],
                                cwd=args.code, env=env, capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
        final = json.loads((save / "final.json").read_text())
        last = final["evaluations"][-1]
        print(json.dumps({"run": name, "sha256": weights_sha256(save / str(final["steps"])),
                          **{k: v for k, v in last.items() if k != "step"}}), flush=True)


if __name__ == "__main__":
    main()
