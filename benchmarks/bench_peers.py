"""Our trainers against Hugging Face TRL's, side by side: the same models, rows and shapes, one
process and one thread each, runs alternated ours / TRL, time per optimizer sample at steady state.

  pip install -e ".[peers]"      # TRL 1.16.0, an optional extra: the package never imports it
  python benchmarks/bench_peers.py --preset tiny --out results/bench/peers-tiny.json

Pairs (ours ↔ TRL):
  sft  train_sft.py                                  ↔ SFTTrainer (completion-only loss)
  kd   train_kd.py --kd-ratio 1 --kd-loss forward_kl ↔ GKDTrainer with λ 0, β 0 (forward KL on the data)
  gkd  train_kd.py --gkd-lambda 0.5, JSD β 0.5       ↔ GKDTrainer λ 0.5, β 0.5 (temperature 1 on both)
  opd  train_minillm.py --recipe opd (no corpus)     ↔ DistillationTrainer (β 1: reverse KL over the
       vocabulary; ours: the sampled-token advantage log p − log q). Both sample 48 tokens from the
       student and score the samples with the teacher.
Workload (the tiny preset's): the checkpoints and data of tools/make_tiny_default.py, processed at
max length 128 and prompt ≤ 80 (48 new tokens), batch 32 (one micro-batch), fp32 on CPU, dropout
as each pair's recipe sets it (SFT: the config's 0.1 on both; the others 0), lr 5e-4 constant,
evaluation and checkpoint saving off on both sides, and no gradient checkpointing on either (TRL's
configs turn it on by default: `--trl-gradient-checkpointing` keeps TRL's default). Both sides draw
batches from the same rows (the processed training split; each side shuffles with its own sampler).
The teacher is the tiny teacher fine-tuned briefly (`--teacher-steps`), enough for timing (not for
quality).

Timing: a round starts one process per side (`--child`); once both are set up they take their
optimizer steps in turn, ours first, each step starting when the other side's has ended (pipes to
this process pass the turn), so the two never run at once and load from other processes drifts
over both alike. A step is timed from its start to its end as each loop defines them: ours, all of
`train_step` (batch assembly, sampling, forward, backward, update); TRL, from the `on_step_begin`
to the `on_step_end` callback (sampling, forward, backward, update; its dataloader collates the
batch before that, so TRL's collation is not counted). The first `--warmup` steps are left out; a
run's figure is its median step / batch: ms per optimizer sample. GKD's steps are on-policy (the
student samples) or not with probability λ on both sides (each side's own seeded draw): its figure
is λ · median(on-policy) + (1 − λ) · median(off-policy), the expected time of a step. `--rounds`
rounds; a round's ratio is ours / TRL, and the report gives their min / median / max, plus each
side's peak resident memory (`ru_maxrss` of its process). On a shared machine only the paired
ratios mean anything.

JSON (`--out`): {"machine", "settings", "pairs": {method: {"ratio" (median), "ratio_min", "ratio_max",
"ratios", "ours_ms", "trl_ms" (per round), "ours_peak_rss_mib", "trl_peak_rss_mib" (median over
rounds), "runs" (per round and side: every step's "durations" and "kinds", "peak_rss_mib")}}}.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: benchmark this checkout's `minillm`
    sys.path.insert(0, str(REPO_ROOT))

TRL_VERSION = "1.16.0"
PRESETS = {"tiny": {"max_length": 128, "max_prompt_length": 80, "batch": 32, "lr": 5e-4}}
METHODS = ("sft", "kd", "gkd", "opd")
STEPS = {"sft": 12, "kd": 12, "gkd": 16, "opd": 8}  # optimizer steps per run
GKD_LAMBDA, GKD_BETA = 0.5, 0.5
SEED = 10
ON_POLICY, OFF_POLICY = "on-policy", "off-policy"


# -- the shared inputs ------------------------------------------------------------------------------

def run_tool(command: list[str], log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with log.open("a") as out:
        result = subprocess.run([sys.executable, *command], cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode:
        raise SystemExit(f"error: {' '.join(command[:2])} failed; its output is in {log}")


def prepare(work: Path, preset: dict, teacher_steps: int) -> dict[str, str]:
    """The tiny checkpoints and data under `work`, made once (each part is skipped when present)."""
    work.mkdir(parents=True, exist_ok=True)
    log = work / "prepare.log"
    tokenizer = work / "checkpoints/tiny-tokenizer"
    run_tool(["tools/make_tiny_default.py", "--root", str(work)], log)  # idempotent
    lengths = ["--max-length", str(preset["max_length"]), "--max-prompt-length", str(preset["max_prompt_length"])]
    processed = {}
    for kind, extra in (("full", []), ("prompt", ["--only-prompt"])):
        processed[kind] = work / "processed" / kind / "tiny"
        if not (processed[kind] / "train_0.idx").exists():
            run_tool(["tools/process_data_dolly.py", "--data-dir", str(work / "data/tiny"), "--model-path", str(tokenizer),
                      "--model-type", "tiny", "--data-process-workers", "1", "--dev-num", "200",
                      "--processed-data-dir", str(work / "processed" / kind), *lengths, *extra], log)
    teacher_run = work / "runs/teacher"
    if not (teacher_run / "best.json").exists():
        run_tool(["train_sft.py", "--model-path", str(work / "checkpoints/tiny-teacher"), "--data-dir",
                  str(processed["full"]), "--save", str(teacher_run), "--overwrite", "--lr", "3e-3",
                  "--total-steps", str(teacher_steps), "--batch-size", "32", "--micro-batch-size", "32",
                  "--eval-gen-num", "-1", *lengths], log)
    from minillm.train.checkpoint import resolve_checkpoint
    return {"student": str(work / "checkpoints/tiny-student"), "tokenizer": str(tokenizer),
            "teacher": str(resolve_checkpoint(teacher_run, "valid_loss")),
            "full": str(processed["full"]), "prompt": str(processed["prompt"])}


# -- one run (a child process) --------------------------------------------------------------------

class StepClock:
    """Each optimizer step's duration and kind. With a baton (two pipe ends to the parent) every
    step waits for the parent's go before it starts and reports when it ends, so the parent runs
    the two sides' steps in turn (see `run_pair`)."""

    def __init__(self, baton: tuple[int, int] | None):
        self.baton = baton
        self.durations: list[float] = []
        self.kinds: list[str] = []
        self.started = 0.0

    def begin(self) -> None:
        if self.baton is not None:
            os.write(self.baton[1], b"r")  # ready for a step
            if os.read(self.baton[0], 1) != b"g":
                raise SystemExit("the benchmark's parent went away")
        self.started = time.perf_counter()

    def end(self, kind: str) -> None:
        self.durations.append(time.perf_counter() - self.started)
        self.kinds.append(kind)
        if self.baton is not None:
            os.write(self.baton[1], b"d")  # done: the other side's turn

    def result(self) -> dict:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return {"durations": self.durations, "kinds": self.kinds, "peak_rss_mib": peak}


def run_ours(method: str, inputs: dict, preset: dict, steps: int, save: str, clock: StepClock) -> None:
    """Our entrypoint in this process, its steps timed; evaluation and saving switched off."""
    from minillm.ppo.step import OnPolicyStep
    from minillm.train import loop
    from minillm.train.response_source import STUDENT
    from minillm.train.token_step import TokenStep

    for cls in (TokenStep, OnPolicyStep):
        def timed(self, step, counters, _original=cls.train_step):
            clock.begin()
            result = _original(self, step, counters)
            responses = getattr(self, "responses", None)
            on_policy = isinstance(self, OnPolicyStep) or (responses is not None and responses.kind(step) == STUDENT)
            clock.end(ON_POLICY if on_policy else OFF_POLICY)
            return result
        cls.train_step = timed
    loop.TrainingLoop._evaluate_and_save = lambda self, step: None
    loop.TrainingLoop._save_state = lambda self, step: None

    common = ["--model-path", inputs["student"], "--save", save, "--overwrite", "--batch-size", str(preset["batch"]),
              "--micro-batch-size", str(preset["batch"]), "--max-length", str(preset["max_length"]),
              "--max-prompt-length", str(preset["max_prompt_length"]), "--lr", str(preset["lr"]),
              "--lr-scheduler", "constant", "--total-steps", str(steps), "--eval-interval", str(steps),
              "--eval-gen-num", "-1", "--log-interval", str(steps), "--seed", str(SEED)]
    teacher = ["--teacher-model-path", inputs["teacher"]]
    if method == "sft":
        import train_sft as entrypoint
        argv = ["--data-dir", inputs["full"]]
    elif method in ("kd", "gkd"):
        import train_kd as entrypoint
        loss = (["--kd-loss", "forward_kl"] if method == "kd" else
                ["--kd-loss", "js_divergence", "--jsd-beta", str(GKD_BETA), "--gkd-lambda", str(GKD_LAMBDA)])
        argv = ["--data-dir", inputs["full"], *teacher, "--kd-ratio", "1", "--dropout", "0", *loss]
    else:
        import train_minillm as entrypoint
        argv = ["--data-dir", inputs["prompt"], *teacher, "--recipe", "opd", "--rollout-batch-size", str(preset["batch"])]
    entrypoint.main(argv + common)


def run_trl(method: str, inputs: dict, preset: dict, steps: int, save: str, clock: StepClock) -> None:
    import random

    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DistillationConfig, DistillationTrainer, SFTConfig, SFTTrainer
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    from minillm.data.datasets import TokenDataset

    sampled = {"now": False}

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock.begin()

        def on_step_end(self, args, state, control, **kwargs):
            clock.end(ON_POLICY if sampled["now"] or method == "opd" else OFF_POLICY)
            sampled["now"] = False

    original = GKDTrainer.generate_on_policy_outputs

    def generate_on_policy_outputs(model, inputs, generation_config):
        sampled["now"] = True
        return original(model, inputs, generation_config)
    GKDTrainer.generate_on_policy_outputs = staticmethod(generate_on_policy_outputs)

    tokenizer = AutoTokenizer.from_pretrained(inputs["tokenizer"], padding_side="left", truncation_side="left")
    tokenizer.pad_token = tokenizer.eos_token
    student = AutoModelForCausalLM.from_pretrained(inputs["student"], dtype=torch.float32)
    teacher = (AutoModelForCausalLM.from_pretrained(inputs["teacher"], dtype=torch.float32)
               if method != "sft" else None)
    common = dict(output_dir=save, per_device_train_batch_size=preset["batch"], gradient_accumulation_steps=1,
                  learning_rate=preset["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.01,
                  max_grad_norm=1.0, max_steps=steps, use_cpu=True, bf16=False, fp16=False,
                  gradient_checkpointing=preset["trl_gradient_checkpointing"], eval_strategy="no",
                  save_strategy="no", report_to="none", logging_steps=steps, disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False,
                  seed=SEED, optim="adamw_torch")
    random.seed(SEED)
    if method == "opd":
        prompts = TokenDataset(inputs["prompt"], "train", preset["max_length"])
        rows = Dataset.from_list([{"prompt": prompts.prompt(i).tolist()} for i in range(len(prompts))])

        class TokenPromptDistillation(DistillationTrainer):
            """The prompts arrive as token ids (ours, processed), not as text to tokenize."""
            def _tokenize_prompts(self, prompts):
                return [list(p) for p in prompts], None, {}

        config = DistillationConfig(**common, max_completion_length=preset["max_length"] - preset["max_prompt_length"],
                                    temperature=1.0, beta=1.0, disable_dropout=True)
        trainer = TokenPromptDistillation(model=student, teacher_model=teacher, args=config, train_dataset=rows,
                                          processing_class=tokenizer, callbacks=[Clock()])
    else:
        data = TokenDataset(inputs["full"], "train", preset["max_length"])
        examples = [data.example(i) for i in range(len(data))]
        rows = Dataset.from_list([{"prompt": "", "input_ids": e.tokens.tolist(),
                                   "completion_mask": [0] * e.prompt_len + [1] * (len(e.tokens) - e.prompt_len)}
                                  for e in examples])
        if method == "sft":
            config = SFTConfig(**common, max_length=preset["max_length"], completion_only_loss=True)
            trainer = SFTTrainer(model=student, args=config, train_dataset=rows, processing_class=tokenizer,
                                 callbacks=[Clock()])
        else:
            lmbda, beta = (0.0, 0.0) if method == "kd" else (GKD_LAMBDA, GKD_BETA)
            config = GKDConfig(**common, max_length=preset["max_length"], lmbda=lmbda, beta=beta, temperature=1.0,
                               max_new_tokens=preset["max_length"] - preset["max_prompt_length"], disable_dropout=True)
            trainer = GKDTrainer(model=student, teacher_model=teacher, args=config, train_dataset=rows,
                                 processing_class=tokenizer, callbacks=[Clock()])
    trainer.train()


def child(side: str, method: str, spec: str) -> None:
    import torch
    torch.set_num_threads(1)
    settings = json.loads(spec)
    clock = StepClock(tuple(settings["baton"]) if settings.get("baton") else None)
    with tempfile.TemporaryDirectory() as save:
        runner = run_ours if side == "ours" else run_trl
        runner(method, settings["inputs"], settings["preset"], settings["steps"], save + "/run", clock)
    Path(settings["result"]).write_text(json.dumps(clock.result()))


# -- the comparison -------------------------------------------------------------------------------

def ms_per_sample(result: dict, method: str, warmup: int, batch: int) -> float:
    """Median step duration after `warmup` steps, per sample; GKD weighted by λ (see above)."""
    durations, kinds = result["durations"][warmup:], result["kinds"][warmup:]
    if method != "gkd":
        return 1000 * statistics.median(durations) / batch
    by_kind = {kind: [t for t, k in zip(durations, kinds) if k == kind] for kind in (ON_POLICY, OFF_POLICY)}
    missing = [kind for kind, values in by_kind.items() if not values]
    if missing:
        raise SystemExit(f"error: a GKD run had no {missing[0]} step after the warm-up: raise --steps")
    on, off = (statistics.median(by_kind[kind]) for kind in (ON_POLICY, OFF_POLICY))
    return 1000 * (GKD_LAMBDA * on + (1 - GKD_LAMBDA) * off) / batch


def run_pair(method: str, settings: dict, log: Path) -> dict[str, dict]:
    """One round: both sides start and set up, then take their optimizer steps in turn, ours first,
    each step waiting for the other side's to end, so that load from other processes drifts over
    both alike and the two never run at once. Their output is appended to `log`."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "WANDB_DISABLED": "true", "TRL_EXPERIMENTAL_SILENCE": "1"}
    sides, channels, processes = ("ours", "trl"), {}, {}
    with tempfile.TemporaryDirectory() as scratch, log.open("a") as out:
        for side in sides:
            to_child, from_child = os.pipe(), os.pipe()
            spec = {**settings, "baton": [to_child[0], from_child[1]], "result": f"{scratch}/{side}.json"}
            out.write(f"==== {side} {method}\n")
            out.flush()
            processes[side] = subprocess.Popen([sys.executable, __file__, "--child", side, method, json.dumps(spec)],
                                               cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                               pass_fds=(to_child[0], from_child[1]))
            os.close(to_child[0])
            os.close(from_child[1])
            channels[side] = (from_child[0], to_child[1])  # (the child's messages, the parent's go)
        try:
            ready = {side: os.read(channels[side][0], 1) == b"r" for side in sides}  # b"" if it died
            while any(ready.values()):
                for side in sides:
                    if ready[side]:
                        os.write(channels[side][1], b"g")
                        finished_step = os.read(channels[side][0], 1) == b"d"
                        ready[side] = finished_step and os.read(channels[side][0], 1) == b"r"  # b"": no more steps
        finally:
            for side in sides:
                for fd in channels[side]:
                    os.close(fd)
                processes[side].wait()
        results = {}
        for side in sides:
            path = Path(f"{scratch}/{side}.json")
            if processes[side].returncode or not path.exists():
                raise SystemExit(f"error: the {side} {method} run failed (exit {processes[side].returncode}); "
                                 f"its output is in {log}")
            results[side] = json.loads(path.read_text())
    return results


def compare(args: argparse.Namespace) -> dict:
    preset = PRESETS[args.preset]
    inputs = prepare(args.work, preset, args.teacher_steps)
    log = args.work / "runs.log"
    pairs = {}
    for method in args.methods:
        settings = {"inputs": inputs, "preset": {**preset, "trl_gradient_checkpointing": args.trl_gradient_checkpointing},
                    "steps": args.steps or STEPS[method]}
        ours, trl, ratios, rss, runs = [], [], [], {"ours": [], "trl": []}, []
        for round_ in range(args.rounds):
            results = run_pair(method, settings, log)
            runs.append(results)
            ours.append(ms_per_sample(results["ours"], method, args.warmup, preset["batch"]))
            trl.append(ms_per_sample(results["trl"], method, args.warmup, preset["batch"]))
            ratios.append(ours[-1] / trl[-1])
            for side in rss:
                rss[side].append(results[side]["peak_rss_mib"])
            print(f"{method} round {round_ + 1}: ours {ours[-1]:.2f} ms/sample, TRL {trl[-1]:.2f}, "
                  f"ratio {ratios[-1]:.2f}", flush=True)
        pairs[method] = {"ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
                         "ratios": ratios, "ours_ms": ours, "trl_ms": trl,
                         "ours_peak_rss_mib": statistics.median(rss["ours"]),
                         "trl_peak_rss_mib": statistics.median(rss["trl"]), "runs": runs}
    import torch
    import transformers
    import trl
    return {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
                       f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}",
            "settings": {"preset": args.preset, **preset, "rounds": args.rounds, "warmup": args.warmup,
                         "steps": {m: args.steps or STEPS[m] for m in args.methods}, "gkd_lambda": GKD_LAMBDA,
                         "gkd_beta": GKD_BETA, "threads": 1, "dtype": "fp32",
                         "trl_gradient_checkpointing": args.trl_gradient_checkpointing},
            "pairs": pairs}


def print_report(report: dict) -> None:
    print(report["machine"])
    print(f"{'pair':<6} {'ours/TRL min / median / max':>28} {'ours ms':>9} {'TRL ms':>9} {'peak RSS ours / TRL MiB':>25}")
    for method, pair in report["pairs"].items():
        spread = f"{pair['ratio_min']:.2f} / {pair['ratio']:.2f} / {pair['ratio_max']:.2f}"
        print(f"{method:<6} {spread:>28} {statistics.median(pair['ours_ms']):>9.2f} "
              f"{statistics.median(pair['trl_ms']):>9.2f} "
              f"{pair['ours_peak_rss_mib']:>12.0f} / {pair['trl_peak_rss_mib']:.0f}")


def trl_missing() -> str | None:
    """Why the TRL side cannot run, or None."""
    try:
        import trl
    except ImportError:
        return (f"TRL is not installed: it is an optional extra of this benchmark, never a dependency of the "
                f"package. Install it with  pip install -e \".[peers]\"  (trl=={TRL_VERSION})")
    if trl.__version__ != TRL_VERSION:
        return f"TRL {trl.__version__} is installed; the pairs are written for trl=={TRL_VERSION} (pip install -e \".[peers]\")"
    return None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(*argv[1:4])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--rounds", type=int, default=3, help="alternated ours / TRL pairs of runs (default 3)")
    parser.add_argument("--steps", type=int, default=0, help=f"optimizer steps per run (default per method: {STEPS})")
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the figures (default 2)")
    parser.add_argument("--teacher-steps", type=int, default=40, help="the tiny teacher's fine-tuning steps (default 40)")
    parser.add_argument("--trl-gradient-checkpointing", action="store_true",
                        help="TRL's own default (its configs turn it on); off unless given, so that both sides do "
                             "the same work (ours does not recompute the forward in the backward)")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "results/bench/peers-work",
                        help="the tiny checkpoints, data and logs (made once; default %(default)s)")
    parser.add_argument("--out", type=Path, help="JSON report")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.warmup < 0 or args.steps < 0:
        parser.error("need --rounds ≥ 1, --warmup ≥ 0, --steps ≥ 0")
    steps = args.steps or min(STEPS[m] for m in args.methods)
    if steps < args.warmup + 3:
        parser.error(f"--steps ({steps}) must leave at least 3 timed steps after --warmup ({args.warmup})")
    reason = trl_missing()
    if reason:
        raise SystemExit(f"error: {reason}")
    report = compare(args)
    print_report(report)
    if args.out:
        from minillm.fileio import atomic_write_json
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
