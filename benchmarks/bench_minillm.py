"""Throughput of MiniLLM's hot loops on a random-weight GPT-2 student/teacher pair.

  python benchmarks/bench_minillm.py --preset tiny                       # CPU smoke run, < 30 s
  python benchmarks/bench_minillm.py --preset gpt2-base-xl --dtype bf16 \\
      --batch 64 --prompt-len 256 --new-tokens 256 --compare-hf         # the shapes of ref §9

MiniLLM spends most of its time sampling rollouts with the teacher stepping alongside the student
(ref §6), so the figures that decide whether a run fits a budget are the sampler's tokens/s, the
seconds per collection and the seconds per optimizer step. This script measures them with the
project's own code (`minillm.eval.generation.sample`, `minillm.ppo.rollouts.collect`/`collate_rollouts`
and `OnPolicyStep._policy_terms`) on models built from shape flags, so no checkpoint is needed
and the numbers can be compared with the anchors of ref §9. Weights are random: only the shapes
matter for speed, and no row is allowed to finish early (there is no EOS; the sampler gets
eos_token_id = -1, which it can never draw), so every run does the full amount of work.

Each figure is one warm-up run followed by `--repeats` timed runs (CUDA synchronised around the
timer); the table shows the median. The optimizer step is plain PyTorch AdamW on the parameters in
`--dtype` (no DeepSpeed, no fp32 master copy), so at bf16/fp16 it under-counts DeepSpeed's
optimizer time and memory.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: benchmark this checkout's `minillm`
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

from minillm.eval.generation import SamplingConfig, sample  # noqa: E402
from minillm.log import peak_memory_mib  # noqa: E402
from minillm.modeling import inference_dtype  # noqa: E402
from minillm.ppo.rollouts import Rollouts, collate_rollouts, collect  # noqa: E402
from minillm.ppo.step import OnPolicyStep  # noqa: E402

# MiniLLM's recipe (ref §6): the settings that change the work done per rollout or per step.
TEACHER_MIX = 0.2
REWARD_SCALING, REWARD_CLIP, GAMMA, CLIP_EPS = 0.5, 100.0, 0.95, 0.2
LR, ADAM_BETAS, WEIGHT_DECAY, CLIP_GRAD = 5e-6, (0.9, 0.95), 1e-6, 1.0
NO_EOS = -1  # an id the sampler can never draw, so every row runs to --new-tokens


@dataclass(frozen=True)
class Shape:
    """A GPT-2 body: transformer blocks, attention heads, hidden width."""
    layers: int
    heads: int
    width: int

    def __str__(self) -> str:
        return f"L{self.layers} H{self.heads} E{self.width}"


# name -> (student, teacher, vocabulary). gpt2-base-xl is the paper's GPT-2 124M <- 1.5B pair;
# tiny has the embedded default's shapes as its figures were measured (the preset's student has been 2 × 128
# since the third pilot, docs/pilot-tiny.md), for a seconds-long CPU check.
PRESETS: dict[str, tuple[Shape, Shape, int]] = {
    "gpt2-base-xl": (Shape(12, 12, 768), Shape(48, 25, 1600), 50257),
    "tiny": (Shape(2, 2, 64), Shape(4, 4, 128), 1144),
}


@dataclass
class Figure:
    """One measured quantity: the timed runs and what one run produces."""
    name: str
    seconds: list[float]  # one per timed repeat
    tokens: int  # tokens one run produces (sampling) or processes (optimizer step)
    decode_steps: int | None  # sequential sampling steps in one run; None where not a sampling loop
    peak_memory_mib: float
    warmup_s: float  # the untimed first run: includes torch.compile's compilation where there is one

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.median_s

    @property
    def ms_per_step(self) -> float | None:
        return None if self.decode_steps is None else 1000 * self.median_s / self.decode_steps

    def record(self) -> dict:
        return {**asdict(self), "median_s": self.median_s, "tokens_per_s": self.tokens_per_s,
                "ms_per_step": self.ms_per_step}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    models = parser.add_argument_group("models (random weights)")
    models.add_argument("--preset", choices=sorted(PRESETS),
                        help="student/teacher shapes and vocabulary; explicit flags below override it")
    models.add_argument("--student-shape", type=int, nargs=3, metavar=("L", "H", "E"),
                        help="student layers, heads, width")
    models.add_argument("--teacher-shape", type=int, nargs=3, metavar=("L", "H", "E"),
                        help="teacher layers, heads, width")
    models.add_argument("--vocab", type=int, help="vocabulary size (default: the preset's, else 50257)")
    work = parser.add_argument_group("workload")
    work.add_argument("--batch", type=int, default=16,
                      help="prompts per sampling batch, also the rollout batch (default %(default)s)")
    work.add_argument("--prompt-len", type=int, default=64, help="random prompt tokens per row (default %(default)s)")
    work.add_argument("--new-tokens", type=int, default=64,
                      help="tokens sampled per row, always all of them (default %(default)s)")
    work.add_argument("--num-rollouts", type=int, default=32, help="rollouts per collection (default %(default)s)")
    work.add_argument("--mini-batch", type=int, default=16, help="rollouts per optimizer step (default %(default)s)")
    work.add_argument("--compare-hf", action="store_true",
                      help="also time HF generate(do_sample=True, top_k=0) for the student, ref §9's baseline")
    work.add_argument("--compile-decode", action="store_true",
                      help="also time the sampling figures with the static KV cache and compiled step")
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                     help="default %(default)s (cuda when available)")
    run.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                     help="weights and compute of both models; fp16 needs a GPU (default %(default)s)")
    run.add_argument("--repeats", type=int, default=3,
                     help="timed runs per figure, after one warm-up run (default %(default)s)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, help="write the settings and figures to this JSON file")
    args = parser.parse_args(argv)

    preset_student, preset_teacher, preset_vocab = PRESETS.get(args.preset, (None, None, 50257))
    args.student = Shape(*args.student_shape) if args.student_shape else preset_student
    args.teacher = Shape(*args.teacher_shape) if args.teacher_shape else preset_teacher
    args.vocab = args.vocab or preset_vocab
    if args.student is None or args.teacher is None:
        parser.error("give --preset or both --student-shape and --teacher-shape")
    for name, shape in (("student", args.student), ("teacher", args.teacher)):
        if min(asdict(shape).values()) < 1 or shape.width % shape.heads:
            parser.error(f"--{name}-shape: need positive L, H, E with E divisible by H, got {shape}")
    if min(args.vocab, args.batch, args.prompt_len, args.new_tokens, args.num_rollouts,
           args.mini_batch, args.repeats) < 1:
        parser.error("sizes and --repeats must be positive")
    if args.mini_batch > args.num_rollouts:
        parser.error(f"--mini-batch ({args.mini_batch}) cannot exceed --num-rollouts ({args.num_rollouts})")
    args.device = torch.device(args.device)
    args.torch_dtype = inference_dtype(args.dtype, args.device)  # refuses fp16 on CPU
    return args


def build_model(shape: Shape, vocab: int, max_positions: int, device: torch.device,
                dtype: torch.dtype) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 with no EOS (so generation never stops early) and no dropout
    (MiniLLM trains with dropout off). Initialised on the target device: a 1.5B model's
    initialisation on CPU would take longer than the benchmark."""
    config = GPT2Config(n_layer=shape.layers, n_head=shape.heads, n_embd=shape.width, vocab_size=vocab,
                        n_positions=max(1024, max_positions), bos_token_id=None, eos_token_id=None,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    with device:
        model = GPT2LMHeadModel(config)
    return model.to(dtype)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def measure(name: str, run: Callable[[], object], *, repeats: int, tokens: int, decode_steps: int | None,
            device: torch.device) -> Figure:
    """One untimed warm-up run (allocator, kernels, lazy initialisation), then `repeats` timed ones."""
    reset_peak_memory(device)
    synchronize(device)
    started = time.perf_counter()
    run()
    synchronize(device)
    warmup_s = time.perf_counter() - started
    seconds = []
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        run()
        synchronize(device)
        seconds.append(time.perf_counter() - started)
    return Figure(name, seconds, tokens, decode_steps, peak_memory_mib(device), warmup_s)


def random_prompts(args: argparse.Namespace, count: int, generator: torch.Generator) -> torch.Tensor:
    """[count, prompt_len] token ids, drawn on the CPU so every device sees the same prompts."""
    return torch.randint(0, args.vocab, (count, args.prompt_len), generator=generator)


def optimizer_step_runner(student: torch.nn.Module, teacher: torch.nn.Module, rollouts: Rollouts,
                          pad_token_id: int, args: argparse.Namespace) -> Callable[[], None]:
    """One MiniLLM optimizer step on `--mini-batch` rollouts, without DeepSpeed.

    The loss is the on-policy step's own `_policy_terms` (student forward with grad, teacher
    forward, PPO-clipped policy loss, single-step reverse KL), called with a stand-in for the step
    that holds only what it reads; then the token-mean scaling of a 1-rank run, backward, gradient
    clipping and AdamW with ref §6's settings.
    """
    method = SimpleNamespace(engine=student, teacher=teacher, vocab_size=args.vocab,
                             config=SimpleNamespace(clip_eps=CLIP_EPS, single_step_reg=True))
    optimizer = torch.optim.AdamW(student.parameters(), lr=LR, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)
    indices = np.arange(args.mini_batch)

    def step() -> None:
        batch = collate_rollouts(rollouts, indices, pad_token_id, args.prompt_len, args.device)
        loss, _ = OnPolicyStep._policy_terms(method, batch, torch.ones(len(indices), device=args.device))
        (loss / batch["mask"].sum().clamp(min=1)).backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), CLIP_GRAD)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run_benchmark(args: argparse.Namespace) -> tuple[list[Figure], dict[str, int]]:
    """The figures in order, and each model's parameter count."""
    device, repeats = args.device, args.repeats
    torch.manual_seed(args.seed)
    max_positions = args.prompt_len + args.new_tokens
    student = build_model(args.student, args.vocab, max_positions, device, args.torch_dtype).eval()
    teacher = build_model(args.teacher, args.vocab, max_positions, device, args.torch_dtype).eval()
    teacher.requires_grad_(False)
    parameters = {role: sum(p.numel() for p in model.parameters())
                  for role, model in (("student", student), ("teacher", teacher))}
    pad = args.vocab - 1  # any id: prompts have no padding and rows never finish
    configs = {"": SamplingConfig(max_new_tokens=args.new_tokens)}  # pure ancestral sampling, ref §7
    if args.compile_decode:
        configs[", compiled"] = SamplingConfig(max_new_tokens=args.new_tokens, decode="compiled")
    cpu_generator = torch.Generator().manual_seed(args.seed)
    sampler = torch.Generator(device=device).manual_seed(args.seed)
    input_ids = random_prompts(args, args.batch, cpu_generator).to(device)
    attention_mask = torch.ones_like(input_ids)
    sampled = args.batch * args.new_tokens
    timed = dict(repeats=repeats, device=device)

    figures = []
    for label, config in configs.items():
        figures += [
            measure(f"student sampling (KV loop{label})",
                    lambda: sample(student, input_ids, attention_mask, config, NO_EOS, pad, generator=sampler),
                    tokens=sampled, decode_steps=args.new_tokens, **timed),
            measure(f"teacher-mixed sampling (α={TEACHER_MIX}{label})",
                    lambda: sample(student, input_ids, attention_mask, config, NO_EOS, pad, generator=sampler,
                                   teacher=teacher, teacher_mix=TEACHER_MIX, record_logprobs=True),
                    tokens=sampled, decode_steps=args.new_tokens, **timed),
        ]
    if args.compare_hf:  # generate() runs under no_grad itself
        figures.append(measure(
            "student sampling (HF generate)",
            lambda: student.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True,
                                     top_k=0, max_new_tokens=args.new_tokens, pad_token_id=pad),
            tokens=sampled, decode_steps=args.new_tokens, **timed))

    prompts = list(random_prompts(args, args.num_rollouts, cpu_generator).numpy())
    collected: list[Rollouts] = []  # the latest collection, which the optimizer step trains on

    def collection(config: SamplingConfig) -> None:
        collected[:] = [collect(
            student, teacher, prompts, config=config, teacher_mix=TEACHER_MIX, reward_scaling=REWARD_SCALING,
            reward_clip=REWARD_CLIP, gamma=GAMMA, length_norm=True, eos_token_id=NO_EOS, pad_token_id=pad,
            max_prompt_length=args.prompt_len, batch_size=args.batch, generator=sampler, device=device,
            sync_ranks=False)]

    batches = -(-args.num_rollouts // args.batch)
    for label, config in configs.items():
        figures.append(measure(f"collection of {args.num_rollouts} rollouts{label}", lambda: collection(config),
                               tokens=args.num_rollouts * args.new_tokens, decode_steps=batches * args.new_tokens,
                               **timed))
    figures.append(measure(f"optimizer step on {args.mini_batch} rollouts",
                           optimizer_step_runner(student, teacher, collected[-1], pad, args),
                           tokens=args.mini_batch * (args.prompt_len + args.new_tokens), decode_steps=None,
                           **timed))
    return figures, parameters


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def print_table(args: argparse.Namespace, figures: list[Figure], parameters: dict[str, int]) -> None:
    print(f"device {device_name(args.device)}, {args.dtype}, torch {torch.__version__}")
    for role, shape in (("student", args.student), ("teacher", args.teacher)):
        print(f"{role} {shape} ({parameters[role] / 1e6:.1f}M params)", end="; ")
    print(f"vocab {args.vocab}; batch {args.batch} x prompt {args.prompt_len} + {args.new_tokens} new tokens; "
          f"median of {args.repeats}")
    header = f"{'figure':<46} {'median s':>9} {'tok/s':>10} {'ms/step':>8} {'peak MiB':>9} {'warm-up s':>9}"
    print(header)
    print("-" * len(header))
    for figure in figures:
        step = "" if figure.ms_per_step is None else f"{figure.ms_per_step:.2f}"
        print(f"{figure.name:<46} {figure.median_s:>9.3f} {figure.tokens_per_s:>10.0f} {step:>8} "
              f"{figure.peak_memory_mib:>9.0f} {figure.warmup_s:>9.2f}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    figures, parameters = run_benchmark(args)
    print_table(args, figures, parameters)
    if args.out is not None:
        settings = {key: value for key, value in vars(args).items()
                    if key not in ("student_shape", "teacher_shape", "torch_dtype", "out")}
        settings.update(student=asdict(args.student), teacher=asdict(args.teacher), device=str(args.device))
        report = {"settings": settings, "device_name": device_name(args.device), "torch": torch.__version__,
                  "transformers": transformers.__version__, "parameters": parameters,
                  "figures": [figure.record() for figure in figures]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
