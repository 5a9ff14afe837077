"""What each method costs, side by side, in one process: SFT, KD with a live teacher, KD from a
teacher cache, and MiniLLM (per optimizer sample and per rollout, with a breakdown), on the same
random-weight models and the same sequence shapes.

  python benchmarks/bench_methods.py --preset tiny --out results/bench/methods-tiny.json   # CPU
  python benchmarks/bench_methods.py --preset gpt2-base-xl --dtype bf16 --out ...          # GPU

Every method runs the project's own objective and step code (`minillm.train.objectives`,
`minillm.ppo.rollouts.collect`, `OnPolicyStep._policy_terms`) with plain AdamW (no DeepSpeed, as
in bench_minillm.py). A token-level step is collate_sft → objective → backward → clip → AdamW on
`--batch` sequences of `--prompt-len` + `--new-tokens` tokens. MiniLLM's unit is one collection
cycle: `--num-rollouts` rollouts sampled in batches of `--rollout-batch` with the teacher mixed in
(α = 0.2) and its logits kept (`--teacher-logits-budget`), then `--ppo-epochs` passes of
mini-batches of `--batch` rollouts, each step also training on `--batch` pretraining chunks with
the cached KD term; `minillm_recomputed` is the same cycle on the recomputed path (a teacher
forward per mini-batch, `--teacher-logits-budget 0`, and per corpus batch, no `--teacher-cache`).
Per optimizer sample = cycle / (ppo_epochs × num_rollouts).
Beside each method, its floor: the same work as bare torch calls at the same shapes (see "the
floor" below), and the method's ratio to it.
Figures: median of `--repeats` rounds after one warm-up; each round times every method and floor
once, so that other processes' load on a shared machine falls on all of them alike.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: benchmark this checkout's `minillm`
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import StaticCache  # noqa: E402
from bench_minillm import (  # noqa: E402
    ADAM_BETAS,
    CLIP_EPS,
    CLIP_GRAD,
    GAMMA,
    LR,
    NO_EOS,
    PRESETS,
    REWARD_CLIP,
    REWARD_SCALING,
    TEACHER_MIX,
    WEIGHT_DECAY,
    build_model,
    device_name,
    synchronize,
)

from minillm.data.datasets import Example, collate_sft  # noqa: E402
from minillm.eval.generation import SamplingConfig  # noqa: E402
from minillm.losses import IGNORE_INDEX, top_k_with_tail  # noqa: E402
from minillm.modeling import inference_dtype  # noqa: E402
from minillm.ppo.rollouts import collate_rollouts, collect  # noqa: E402
from minillm.ppo.step import OnPolicyStep  # noqa: E402
from minillm.train.objectives import KDObjective, sft_objective  # noqa: E402

KD_RATIO = 0.5  # the pretraining term's and word-level KD's mix of CE and forward KL
# Targets of issue 14 (tiny preset, 2 CPU cores), as multiples of SFT's time per sample.
TARGETS = {"kd_cached": 1.3, "minillm": 3.0}
# name -> (batch, prompt, new tokens, rollouts per collection, rollout batch, PPO epochs): the tiny
# driver's MiniLLM recipe (the tiny preset, minillm/experiments/settings.py), and the paper's GPT-2 recipe (ref §6).
WORKLOADS = {"tiny": (32, 64, 64, 128, 128, 2), "gpt2-base-xl": (64, 256, 256, 256, 64, 4)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True, help="models and workload")
    parser.add_argument("--batch", type=int, help="sequences per optimizer step (token methods), rollouts per "
                                                  "mini-batch and corpus chunks per step (MiniLLM)")
    parser.add_argument("--prompt-len", type=int)
    parser.add_argument("--new-tokens", type=int, help="response tokens (token methods: supervised tokens)")
    parser.add_argument("--num-rollouts", type=int)
    parser.add_argument("--rollout-batch", type=int, help="prompts per sampling pass")
    parser.add_argument("--ppo-epochs", type=int)
    parser.add_argument("--top-k", type=int, default=64, help="the teacher cache's k (default %(default)s)")
    parser.add_argument("--teacher-logits-budget", type=float, default=8192.0, help="MiB (default %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON report")
    args = parser.parse_args(argv)
    defaults = dict(zip(("batch", "prompt_len", "new_tokens", "num_rollouts", "rollout_batch", "ppo_epochs"),
                        WORKLOADS[args.preset]))
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.num_rollouts % args.batch:
        parser.error(f"--num-rollouts ({args.num_rollouts}) must be a multiple of --batch ({args.batch})")
    args.device = torch.device(args.device)
    args.torch_dtype = inference_dtype(args.dtype, args.device)
    return args


def time_interleaved(runs: dict[str, Callable[[], dict[str, float] | None]], repeats: int,
                     device: torch.device) -> dict[str, dict]:
    """One warm-up of every run, then `repeats` rounds that each time every run once, so that load
    from other processes on a shared machine falls on all methods alike. Per run: the seconds of
    each round, their median, and the median of each part the run reports (seconds by name)."""
    for run in runs.values():
        run()
    totals = {name: [] for name in runs}
    parts = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            synchronize(device)
            started = time.perf_counter()
            parts[name].append(run() or {})
            synchronize(device)
            totals[name].append(time.perf_counter() - started)
    return {name: {"seconds": totals[name], "median_s": statistics.median(totals[name]),
                   "parts_s": {part: statistics.median(p[part] for p in parts[name]) for part in parts[name][0]}}
            for name in runs}


class Clock:
    """Seconds spent per named part of a run (synchronised on a GPU), and within each part the
    seconds spent in the teacher's forward passes (timed by hooks on the teacher)."""

    def __init__(self, device: torch.device, teacher: torch.nn.Module):
        self.device, self.parts, self.teacher_seconds = device, {}, 0.0
        self._last = time.perf_counter()
        self._hooks = [teacher.register_forward_pre_hook(self._teacher_starts),
                       teacher.register_forward_hook(self._teacher_ends)]

    def _teacher_starts(self, *_) -> None:
        synchronize(self.device)
        self._teacher_started = time.perf_counter()

    def _teacher_ends(self, *_) -> None:
        synchronize(self.device)
        self.teacher_seconds += time.perf_counter() - self._teacher_started

    def lap(self, name: str) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.parts[name] = self.parts.get(name, 0.0) + now - self._last
        teacher_part = f"  of which teacher forwards ({name})"
        self.parts[teacher_part] = self.parts.get(teacher_part, 0.0) + self.teacher_seconds
        self._last, self.teacher_seconds = now, 0.0

    def stop(self) -> dict[str, float]:
        for hook in self._hooks:
            hook.remove()
        return self.parts


def random_examples(count: int, args: argparse.Namespace, vocab: int, rng: np.random.Generator) -> list[Example]:
    """Prompt + response items of the full length (every response token supervised)."""
    return [Example(rng.integers(0, vocab, args.prompt_len + args.new_tokens), args.prompt_len) for _ in range(count)]


@torch.no_grad()
def with_teacher_records(examples: list[Example], teacher: torch.nn.Module, k: int, vocab: int,
                         device: torch.device) -> list[Example]:
    """The examples as a teacher cache serves them (tools/cache_teacher.py's computation)."""
    batch = collate_sft(examples, pad_id=0)
    logits = teacher(**{key: batch[key].to(device) for key in ("input_ids", "attention_mask", "position_ids")}).logits
    mask = batch["labels"] != IGNORE_INDEX
    cached = []
    for row, example in enumerate(examples):
        ids, log_probs = top_k_with_tail(logits[row][mask[row].to(device)][:, :vocab].float().log_softmax(-1), k)
        cached.append(Example(example.tokens, example.prompt_len, teacher=(ids.int().cpu().numpy(),
                                                                            log_probs.cpu().numpy())))
    return cached


def optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=LR, betas=ADAM_BETAS, weight_decay=WEIGHT_DECAY)


def update(model: torch.nn.Module, optim: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD)
    optim.step()
    optim.zero_grad(set_to_none=True)


def token_step(student, optim, objective, examples: list[Example], device: torch.device) -> Callable[[], None]:
    """One token-level optimizer step: collate, objective, token-mean, update."""
    def step() -> None:
        batch = {k: v.to(device) for k, v in collate_sft(examples, pad_id=0).items()}
        rows, _ = objective(student, batch)
        update(student, optim, rows.sum() / (batch["labels"] != IGNORE_INDEX).sum())
    return step


# -- the floor: the same work as bare torch calls --------------------------------------------------
# Each method's floor does what its math needs and nothing else, on tensors built once outside the
# timed step: the models' forward passes (the Hugging Face modules at the same shapes, the output
# projection only where a loss reads it), the loss on exactly the scored positions, backward,
# gradient clipping and AdamW; sampling is a plain loop over HF's preallocated StaticCache. No
# collation, no masks for rows that cannot end (the benchmark's rows never do), no bookkeeping.

def scored_batch(examples: list[Example], device: torch.device) -> dict[str, torch.Tensor]:
    """collate_sft's tensors on the device, plus the scored positions' targets and cache records."""
    batch = {k: v.to(device) for k, v in collate_sft(examples, pad_id=0).items()}
    scored = batch["labels"] != IGNORE_INDEX
    first = int(scored.any(0).nonzero()[0])  # the output projection runs from the first scored column on
    batch["keep"] = torch.arange(first, scored.shape[1], device=device)
    batch["scored"] = scored[:, first:]
    batch["targets"] = batch["labels"][scored]
    if "teacher_ids" in batch:
        batch["ids"], batch["log_p"] = batch["teacher_ids"][scored].long(), batch["teacher_log_probs"][scored]
    return batch


def bare_token_loss(student, teacher, batch: dict[str, torch.Tensor], kd_ratio: float) -> torch.Tensor:
    """Mean CE (+ kd_ratio · forward KL to the live teacher or to the cached top-k + tail buckets)
    over the scored positions."""
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
    log_q = student(**inputs, logits_to_keep=batch["keep"]).logits[batch["scored"]].float().log_softmax(-1)
    ce = torch.nn.functional.nll_loss(log_q, batch["targets"])
    if teacher is not None:
        with torch.no_grad():
            log_p = teacher(**inputs, logits_to_keep=batch["keep"]).logits[batch["scored"]].float().log_softmax(-1)
    elif "ids" in batch:
        log_p = batch["log_p"]
        top = log_q.gather(1, batch["ids"])
        log_q = torch.cat([top, torch.log1p(-top.exp().sum(-1, keepdim=True).clamp(max=1 - 1e-6))], 1)
    else:
        return ce
    return (1 - kd_ratio) * ce + kd_ratio * (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def bare_token_step(student, optim, teacher, examples: list[Example], device: torch.device) -> Callable[[], None]:
    batch = scored_batch(examples, device)
    kd_ratio = KD_RATIO if teacher is not None or "ids" in batch else 0.0

    def step() -> None:
        update(student, optim, bare_token_loss(student, teacher, batch, kd_ratio))
    return step


@torch.no_grad()
def bare_sampling(student, teacher, prompts: torch.Tensor, new_tokens: int, generator: torch.Generator,
                  keep_teacher_logits: bool) -> dict[str, torch.Tensor]:
    """Teacher-mixed ancestral sampling of every row to `new_tokens`, both log-probs recorded
    (and the teacher's logits kept): prompts [R, P] → tokens, log q, log p [R, T] (+ logits)."""
    rows, prompt = prompts.shape
    length = prompt + new_tokens
    mask = torch.ones(rows, length, dtype=torch.long, device=prompts.device)
    caches = [StaticCache(config=m.config, max_cache_len=length) for m in (student, teacher)]
    positions = torch.arange(prompt, device=prompts.device).expand(rows, prompt)
    logits = [m(input_ids=prompts, attention_mask=mask, position_ids=positions, past_key_values=c, use_cache=True,
                logits_to_keep=1).logits[:, -1] for m, c in zip((student, teacher), caches)]
    out = {name: torch.empty(rows, new_tokens, device=prompts.device) for name in ("old", "teacher")}
    out["tokens"] = torch.empty(rows, new_tokens, dtype=torch.long, device=prompts.device)
    if keep_teacher_logits:
        out["teacher_logits"] = torch.empty(rows, new_tokens, logits[1].shape[-1], device=prompts.device)
    for t in range(new_tokens):
        log_q, log_p = (x.float().log_softmax(-1) for x in logits)
        if keep_teacher_logits:
            out["teacher_logits"][:, t] = logits[1]
        drawn = torch.multinomial(TEACHER_MIX * log_p.exp() + (1 - TEACHER_MIX) * log_q.exp(), 1, generator=generator)
        out["tokens"][:, t] = drawn[:, 0]
        out["old"][:, t], out["teacher"][:, t] = log_q.gather(1, drawn)[:, 0], log_p.gather(1, drawn)[:, 0]
        if t + 1 < new_tokens:
            position = torch.full((rows, 1), prompt + t, device=prompts.device)
            logits = [m(input_ids=drawn, attention_mask=mask, position_ids=position, past_key_values=c,
                        use_cache=True).logits[:, -1] for m, c in zip((student, teacher), caches)]
    return out


def bare_advantages(old: torch.Tensor, teacher: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance weights and whitened length-normalised discounted returns of full-length rows."""
    mixed = torch.logaddexp(teacher + math.log(TEACHER_MIX), old + math.log1p(-TEACHER_MIX))
    rewards = ((teacher - old) / REWARD_SCALING).clamp(-REWARD_CLIP, REWARD_CLIP)
    steps = torch.arange(old.shape[1], device=old.device)
    offset = steps[None, :] - steps[:, None]
    returns = rewards @ torch.where(offset >= 0, GAMMA ** offset.clamp(min=0).float(), 0.0).T
    returns = returns / (old.shape[1] - steps)
    return (old - mixed).exp(), (returns - returns.mean()) / returns.std(unbiased=False).add(1e-8)


def bare_minillm_cycle(student, teacher, optim, args, prompts: list[np.ndarray], corpus: list[Example],
                       keep_teacher_logits: bool) -> Callable[[], None]:
    """`minillm_cycle`'s work as bare calls: sampling, advantages, then per mini-batch the student's
    forward on its rollouts (PPO-clipped loss + single-step reverse KL against the kept or a fresh
    teacher) and on its corpus chunks (CE + KD against the cache or the live teacher), one update."""
    prompt_ids = torch.as_tensor(np.stack(prompts), device=args.device)
    corpus_batch = scored_batch(corpus, args.device)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    prompt, new = args.prompt_len, args.new_tokens
    scored = torch.arange(prompt - 1, prompt - 1 + new, device=args.device)

    def cycle() -> None:
        rollouts = bare_sampling(student, teacher, prompt_ids, new, generator, keep_teacher_logits)
        weights, advantages = bare_advantages(rollouts["old"], rollouts["teacher"])
        for epoch in range(args.ppo_epochs):
            order = torch.as_tensor(np.random.default_rng([args.seed, epoch]).permutation(args.num_rollouts))
            for start in range(0, args.num_rollouts, args.batch):
                rows = order[start:start + args.batch].to(args.device)
                sequence = torch.cat([prompt_ids[rows], rollouts["tokens"][rows]], 1)
                logits = student(input_ids=sequence, logits_to_keep=scored).logits.float()
                log_q = logits.log_softmax(-1)
                ratio = (log_q.gather(2, rollouts["tokens"][rows, :, None])[..., 0] - rollouts["old"][rows]).exp()
                ratio = ratio * weights[rows]
                pg = torch.maximum(-advantages[rows] * ratio,
                                   -advantages[rows] * ratio.clamp(1 - CLIP_EPS, 1 + CLIP_EPS)).mean()
                if keep_teacher_logits:
                    teacher_logits = rollouts["teacher_logits"][rows]
                else:
                    with torch.no_grad():
                        teacher_logits = teacher(input_ids=sequence, logits_to_keep=scored).logits
                log_p = teacher_logits.float().log_softmax(-1)
                reverse_kl = (log_q.exp() * (log_q - log_p)).sum(-1).mean()
                corpus_loss = bare_token_loss(student, None if keep_teacher_logits else teacher, corpus_batch,
                                              KD_RATIO)
                update(student, optim, pg + reverse_kl + corpus_loss)
    return cycle


def minillm_cycle(student, teacher, optim, args, vocab: int, prompts: list[np.ndarray], corpus: list[Example],
                  corpus_objective, keep_teacher_logits: bool) -> Callable[[], dict[str, float]]:
    """One collection and its PPO epochs; returns seconds by part."""
    method = SimpleNamespace(engine=student, teacher=teacher, vocab_size=vocab,
                             config=SimpleNamespace(clip_eps=CLIP_EPS, single_step_reg=True))
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    sampling = SamplingConfig(max_new_tokens=args.new_tokens)

    def cycle() -> dict[str, float]:
        clock = Clock(args.device, teacher)
        rollouts = collect(student, teacher, prompts, config=sampling, teacher_mix=TEACHER_MIX,
                           reward_scaling=REWARD_SCALING, reward_clip=REWARD_CLIP, gamma=GAMMA, length_norm=True,
                           eos_token_id=NO_EOS, pad_token_id=0, max_prompt_length=args.prompt_len,
                           batch_size=args.rollout_batch, generator=generator, device=args.device, sync_ranks=False,
                           vocab_size=vocab,
                           teacher_logits_budget_mib=args.teacher_logits_budget if keep_teacher_logits else 0.0)
        clock.lap("sampling")
        for epoch in range(args.ppo_epochs):
            order = np.random.default_rng([args.seed, epoch]).permutation(args.num_rollouts)
            for start in range(0, args.num_rollouts, args.batch):
                batch = collate_rollouts(rollouts, order[start:start + args.batch], 0, args.prompt_len, args.device)
                loss, _ = OnPolicyStep._policy_terms(method, batch, torch.ones(args.batch, device=args.device))
                loss = loss / batch["mask"].sum().clamp(min=1)
                clock.lap("policy terms")
                corpus_batch = {k: v.to(args.device) for k, v in collate_sft(corpus, pad_id=0).items()}
                rows, _ = corpus_objective(student, corpus_batch)
                loss = loss + rows.sum() / (corpus_batch["labels"] != IGNORE_INDEX).sum()
                clock.lap("pretraining term")
                update(student, optim, loss)
                clock.lap("backward + optimizer")
        return clock.stop()
    return cycle


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    student_shape, teacher_shape, vocab = PRESETS[args.preset]
    positions = args.prompt_len + args.new_tokens
    student = build_model(student_shape, vocab, positions, args.device, args.torch_dtype)
    teacher = build_model(teacher_shape, vocab, positions, args.device, args.torch_dtype).eval()
    teacher.requires_grad_(False)
    rng = np.random.default_rng(args.seed)
    examples, corpus = random_examples(args.batch, args, vocab, rng), random_examples(args.batch, args, vocab, rng)
    cached_examples = with_teacher_records(examples, teacher, args.top_k, vocab, args.device)
    cached_corpus = with_teacher_records(corpus, teacher, args.top_k, vocab, args.device)
    prompts = [rng.integers(0, vocab, args.prompt_len) for _ in range(args.num_rollouts)]
    live_kd = KDObjective(teacher, KD_RATIO, "forward_kl", vocab)
    cached_kd = KDObjective(None, KD_RATIO, "forward_kl", vocab)
    optim = optimizer(student)
    runs = {
        "sft": token_step(student, optim, sft_objective, examples, args.device),
        "kd": token_step(student, optim, live_kd, examples, args.device),
        "kd_cached": token_step(student, optim, cached_kd, cached_examples, args.device),
        "minillm": minillm_cycle(student, teacher, optim, args, vocab, prompts, cached_corpus, cached_kd, True),
        "minillm_recomputed": minillm_cycle(student, teacher, optim, args, vocab, prompts, corpus, live_kd, False),
    }
    floors = {
        "sft": bare_token_step(student, optim, None, examples, args.device),
        "kd": bare_token_step(student, optim, teacher, examples, args.device),
        "kd_cached": bare_token_step(student, optim, None, cached_examples, args.device),
        "minillm": bare_minillm_cycle(student, teacher, optim, args, prompts, cached_corpus, True),
        "minillm_recomputed": bare_minillm_cycle(student, teacher, optim, args, prompts, corpus, False),
    }
    timings = time_interleaved({**runs, **{f"{name} (floor)": floor for name, floor in floors.items()}},
                               args.repeats, args.device)
    samples = {name: args.ppo_epochs * args.num_rollouts if name.startswith("minillm") else args.batch for name in runs}
    sft_ms = 1000 * timings["sft"]["median_s"] / args.batch
    methods = {}
    for name in runs:
        timing, floor = timings[name], timings[f"{name} (floor)"]
        figures = {"ms_per_sample": 1000 * timing["median_s"] / samples[name],
                   "floor_ms_per_sample": 1000 * floor["median_s"] / samples[name]}
        if name.startswith("minillm"):
            figures.update(ms_per_rollout=1000 * timing["median_s"] / args.num_rollouts,
                           breakdown_ms_per_sample={part: 1000 * s / samples[name]
                                                    for part, s in timing["parts_s"].items()})
        figures["ratio_to_sft"] = figures["ms_per_sample"] / sft_ms
        figures["ratio_to_floor"] = figures["ms_per_sample"] / figures["floor_ms_per_sample"]
        figures["floor_ratio_to_sft"] = figures["floor_ms_per_sample"] / sft_ms
        if name in TARGETS:
            figures["target_ratio"] = TARGETS[name]
            figures["target_met"] = figures["ratio_to_sft"] <= TARGETS[name]
        methods[name] = {**figures, "seconds": timing["seconds"], "floor_seconds": floor["seconds"]}
    settings = {key: value for key, value in vars(args).items() if key not in ("torch_dtype", "out")}
    settings.update(device=str(args.device), student=asdict(student_shape), teacher=asdict(teacher_shape), vocab=vocab)
    return {"machine": f"{device_name(args.device)}, torch {torch.__version__}", "settings": settings,
            "methods": methods}


def print_report(report: dict) -> None:
    print(report["machine"])
    print(f"{'method':<20} {'ms/sample':>10} {'× SFT':>7} {'floor ms':>9} {'floor × SFT':>12} {'× floor':>8} "
          f"{'ms/rollout':>11}  target")
    for name, figures in report["methods"].items():
        rollout = f"{figures['ms_per_rollout']:.2f}" if "ms_per_rollout" in figures else ""
        target = ""
        if "target_ratio" in figures:
            target = f"≤ {figures['target_ratio']}× {'met' if figures['target_met'] else 'MISSED'}"
        print(f"{name:<20} {figures['ms_per_sample']:>10.3f} {figures['ratio_to_sft']:>7.2f} "
              f"{figures['floor_ms_per_sample']:>9.3f} {figures['floor_ratio_to_sft']:>12.2f} "
              f"{figures['ratio_to_floor']:>8.2f} {rollout:>11}  {target}")
        for part, ms in figures.get("breakdown_ms_per_sample", {}).items():
            if ms > 0:  # a part without teacher forwards has no "of which" line
                print(f"    {part:<44} {ms:>8.3f} ms/sample")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
