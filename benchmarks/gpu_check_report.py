"""The report of benchmarks/gpu_check.sh: one row per stage, from what each stage left in its folder.

  python benchmarks/gpu_check_report.py results/gpu_check [--peak-tflops 989] [--gpu-name "NVIDIA H200"]

Reads CHECK_DIR/stages.jsonl (one line per stage: name, kind, run folder, DeepSpeed config or
dtype, exit status, start and end) and each run folder: a training run's final.json, log.jsonl and
config.json; SeqKD's generation.json; the evaluation's eval_log.jsonl. Writes CHECK_DIR/report.json
and report.md and exits 1 when a stage failed: it crashed, a training run left no final.json, a
logged value was NaN or infinite, the finite-loss guard skipped a step, or the loss did not fall
(the mean over the second half of the logged steps is not below the first half's; for MiniLLM's 8
steps over one collection the halves are PPO epochs over the same rollouts).

MFU = 6 · N · tokens / train seconds / peak FLOP/s, N the trained model's parameters, tokens what
the run's counters count (token-level: every token of each batch; on-policy: the sampled response
tokens once, plus the corpus chunks), peak: --peak-tflops, else $GPU_PEAK_TFLOPS, else the dense
bf16 figure of the GPU's name in PEAK_TFLOPS; "n/a" on CPU. The teacher's forwards and sampling are
not counted, so KD's and MiniLLM's MFU understate what the GPU did.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: this checkout's `minillm`
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from minillm.experiments.reading import ReportError, read_jsonl  # noqa: E402
from minillm.experiments.rendering import markdown_table  # noqa: E402
from minillm.fileio import atomic_write_json, atomic_write_text  # noqa: E402

# Dense bf16 (= fp16) tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def peak_tflops(gpu_name: str | None, override: float | None) -> float | None:
    if override:
        return override
    if gpu_name is None:
        return None
    return next((value for key, value in PEAK_TFLOPS.items() if key in gpu_name), None)


def parameter_count(model_path: str) -> int:
    """From the folder's config alone: the model built on the meta device holds no weights."""
    config = AutoConfig.from_pretrained(model_path, local_files_only=True)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config).num_parameters()


def read_records(path: Path) -> list[dict]:
    """A JSON-lines file's records; none when the stage never wrote it (it crashed first)."""
    return read_jsonl(path) if path.is_file() else []


def step_loss(record: dict) -> float | None:
    """The objective a step minimises: `loss`, or the on-policy terms on the rollouts (the corpus
    term's chunks differ from step to step)."""
    if "loss" in record:
        return record["loss"]
    terms = [record[name] for name in ("pg_loss", "reg_loss") if name in record]
    return sum(terms) if terms else None


def non_finite(records: list[dict]) -> list[str]:
    return sorted({f"{name} at step {record.get('step')}" for record in records for name, value in record.items()
                   if isinstance(value, float) and not math.isfinite(value)})


def loss_trend(losses: list[float]) -> tuple[float, float, bool] | None:
    """(mean of the first half, mean of the second half, whether it fell); None below 2 steps."""
    if len(losses) < 2:
        return None
    half = len(losses) // 2
    first, last = sum(losses[:half]) / half, sum(losses[-half:]) / half
    return first, last, last < first


def train_row(run: Path, peak: float | None) -> dict:
    final = json.loads((run / "final.json").read_text()) if (run / "final.json").is_file() else None
    records = read_records(run / "log.jsonl")
    row: dict = {"problems": []}
    if final is None:
        row["problems"].append("no final.json: the run did not finish")
        return row
    config = json.loads((run / "config.json").read_text())
    steps = [record for record in records if "event" not in record]
    on_policy = "rollout_tokens" in final
    tokens = final["rollout_tokens"] + final.get("ptx_tokens", 0) if on_policy else final["tokens"]
    train_s = final["train_seconds"]
    parameters = parameter_count(config["model_path"])
    row.update(parameters=parameters, steps=final["steps"], tokens=tokens, train_seconds=train_s,
               tokens_per_s=tokens / train_s if train_s else None,
               seconds_per_sample=train_s / (final["steps"] * config["batch_size"]),
               peak_memory_mib=final["peak_memory_mib"], skipped_nonfinite=final["skipped_steps"],
               skipped_overflow=max(0, final["deepspeed_skipped_steps"] - final["skipped_steps"]))
    row["mfu"] = 6 * parameters * tokens / train_s / (peak * 1e12) if peak and train_s else None
    if on_policy and steps:  # one collection: its sampling speed, comparable with reference §9's
        row["sampling_tokens_per_s"] = final["rollout_tokens"] / steps[0]["rollout_seconds"]
    losses = [step_loss(record) for record in steps]
    trend = loss_trend([loss for loss in losses if loss is not None])
    bad = non_finite(records) + non_finite([{k: v for k, v in final.items() if k != "evaluations"}])
    if bad:
        row["problems"].append("non-finite: " + ", ".join(bad))
    if final["skipped_steps"]:
        row["problems"].append(f"{final['skipped_steps']} steps skipped for a non-finite loss or gradient")
    if trend is None:
        row["problems"].append(f"{len(steps)} logged steps: too few to tell whether the loss falls")
    else:
        row["loss_first"], row["loss_last"], falls = trend
        if not falls:
            row["problems"].append(f"loss does not fall ({trend[0]:.4g} → {trend[1]:.4g})")
    return row


def generate_row(run: Path) -> dict:
    meta = json.loads((run / "generation.json").read_text())
    return {"problems": [], "tokens": meta["tokens"], "tokens_per_s": meta["tokens"] / meta["seconds"],
            "seconds_per_sample": meta["seconds"] / meta["generated_rows"], "peak_memory_mib": meta["peak_memory_mib"],
            "samples": meta["generated_rows"]}


def eval_rows(run: Path) -> dict:
    """Per eval set (the check samples one seed) and over all of them."""
    records = [r for r in read_records(run / "eval_log.jsonl") if r.get("event") == "eval"]
    sets = {r["set"]: {"rows": r["rows"], "tokens": r["tokens"], "tokens_per_s": r["tokens"] / r["seconds"],
                       "seconds_per_sample": r["seconds"] / r["rows"], "peak_memory_mib": r["peak_memory_mib"]}
            for r in records}
    tokens, sampled = sum(r["tokens"] for r in records), sum(r["seconds"] for r in records)
    return {"problems": [] if records else ["no evaluation records"], "sets": sets, "tokens": tokens,
            "tokens_per_s": tokens / sampled if sampled else None,
            "seconds_per_sample": sampled / sum(r["rows"] for r in records) if records else None,
            "peak_memory_mib": max((r["peak_memory_mib"] for r in records), default=None)}


def build_report(check_dir: Path, peak: float | None, gpu_name: str | None, mode: str) -> dict:
    readers = {"train": lambda run: train_row(run, peak), "generate": generate_row, "eval": eval_rows}
    stages = []
    for entry in read_records(check_dir / "stages.jsonl"):
        row = {"stage": entry["stage"], "kind": entry["kind"], "config": entry["config"], "status": entry["status"],
               "wall_seconds": round(entry["ended"] - entry["started"], 1)}
        if entry["status"]:
            row["problems"] = [f"exited with status {entry['status']} (logs/{entry['stage']}.log)"]
        elif entry["kind"] in readers:
            try:
                row.update(readers[entry["kind"]](Path(entry["run"])))
            except (OSError, KeyError, ValueError, ZeroDivisionError, ReportError) as err:
                row["problems"] = [f"unreadable outputs: {type(err).__name__}: {err}"]
        row.setdefault("problems", [])
        stages.append(row)
    return {"mode": mode, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "device": gpu_name or "cpu", "peak_tflops": peak, "torch": torch.__version__,
            "transformers": transformers.__version__, "stages": stages,
            "failed": [row["stage"] for row in stages if row["problems"]] or ([] if stages else ["(no stage ran)"])}


def _fmt(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    peak = f"{report['peak_tflops']:g} TFLOP/s" if report["peak_tflops"] else "n/a"
    lines = [f"# gpu_check ({report['mode']})", "",
             f"{report['date']}; device: {report['device']}; MFU peak: {peak}; torch {report['torch']}, "
             f"transformers {report['transformers']}.", ""]
    rows = []
    for row in report["stages"]:
        mfu = "n/a" if row["kind"] == "train" and not report["peak_tflops"] else _fmt(row.get("mfu"), ".1%")
        skipped = (f"{row['skipped_nonfinite']} / {row['skipped_overflow']}" if "skipped_overflow" in row else "–")
        loss = f"{row['loss_first']:.4g} → {row['loss_last']:.4g}" if "loss_first" in row else "–"
        rows.append([row["stage"], row["config"] or "–", f"{row['wall_seconds']:.1f}",
                     _fmt(row.get("tokens_per_s"), ",.0f"), _fmt(row.get("sampling_tokens_per_s"), ",.0f"), mfu,
                     _fmt(row.get("peak_memory_mib"), ",.0f"), _fmt(row.get("seconds_per_sample"), ".4f"), skipped,
                     loss, "; ".join(row["problems"]) or "ok"])
    lines.append(markdown_table(["stage", "config", "wall s", "tok/s", "sampling tok/s", "MFU", "peak MiB", "s/sample",
                                 "skipped: non-finite / overflow", "loss first → last half", "problems"], rows))
    lines += ["", f"**{'FAILED: ' + ', '.join(report['failed']) if report['failed'] else 'All stages passed.'}**", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check_dir", type=Path)
    parser.add_argument("--peak-tflops", type=float, default=float(os.environ.get("GPU_PEAK_TFLOPS") or 0) or None,
                        help="the MFU denominator (default: $GPU_PEAK_TFLOPS, else by the GPU's name)")
    parser.add_argument("--gpu-name", help="default: torch.cuda.get_device_name(), none on CPU")
    parser.add_argument("--mode", default="gpu", help="written in the report's title")
    args = parser.parse_args(argv)
    gpu_name = args.gpu_name or (torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    report = build_report(args.check_dir, peak_tflops(gpu_name, args.peak_tflops), gpu_name, args.mode)
    atomic_write_json(args.check_dir / "report.json", report)
    text = markdown(report)
    atomic_write_text(args.check_dir / "report.md", text)
    print(text)
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
