"""Tokenise Dolly-style instruction data into MiniLLM's processed layout.

Reads `{data_dir}/raw.jsonl` and writes `{split}_0.bin`, `{split}_0.idx` and `{split}.jsonl`
into `{processed_data_dir}/{model_type}/`, byte-identical to MiniLLM's own
`tools/process_data_dolly.py` for the same input and tokenizer (but always in input order).
The whole input is validated before anything is written, and each file appears only once it is
complete, so bad input never leaves partial output.

Step-by-step distillation processes the same rationale rows once per task: `--task label`
(target `output`) and `--task rationale` (target `rationale`), each prompt preceded by the task
prefix; rows with an empty target have no such task and are skipped (and counted). The `.jsonl`
rows then also record `row`, the input line within the split, so the tasks of a question pair up,
and `answer` (accuracy). `task.json` records the task and its prefix.

MiniLLM calls the tool once per output folder. One call may also write them all, which saves a
process start-up (imports, tokenizer) per folder: `--prompt-processed-data-dir` adds the
prompt-only variant beside the full one, and `--task label rationale` writes each task into the
folders' `{task}` placeholder. Every check runs before the first folder is written.

The output folder is written under a temporary name and replaces `{processed_data_dir}/{model_type}`
whole, so no file of an earlier processing survives; `data_manifest.json` records the tokenizer,
the settings, the source's sha256 (training checks it) and, per split, the counts printed in the
summary (`counts`). An input that leaves no training item is an error; when the input was written
by a teacher stage (tools/generate.py's generation.json, tools/generate_rationales.py's
raw.meta.json beside it) the error says so and what that stage reported.

Rows, case by case:
  - prompt longer than --max-prompt-length tokens: dropped and counted (MiniLLM's rule);
  - empty or whitespace-only `output` (plain processing): refused with file:line, unless the row
    was written by a teacher (it has tools/generate.py's `gold_output`: the teacher's answer was
    empty, and SeqKD imitates the teacher) or --allow-empty-outputs; either way kept and counted;
  - empty or whitespace-only target of a --task: that row has no such task (skipped, counted);
  - empty or whitespace-only instruction and input together: refused with file:line (a response
    to the bare template teaches nothing);
  - a duplicate of an earlier row of the same split (instruction, input, target): kept and
    counted (synthetic and real data hold some; MiniLLM keeps them);
  - prompt + response longer than --max-length: kept whole in the files, cut by training to
    --max-length (MiniLLM's rule): counted, with the longest response.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from minillm.data.indexed import IndexedDatasetWriter, best_dtype, split_id_for
from minillm.data.manifest import write_data_manifest
from minillm.data.rationale import sidecar_path
from minillm.data.templates import TASK_PREFIXES
from minillm.fileio import atomic_directory, atomic_open, atomic_write_json
from minillm.modeling import load_tokenizer
from minillm.data.processing import (
    DataFormatError,
    encode_instruction_example,
    map_with_tokenizer,
    normalize_instruction_record,
    read_jsonl,
)

TASK_FIELDS = {"label": "output", "rationale": "rationale"}  # the target of each task


class NoTrainingDataError(ValueError):
    """The input leaves no item for the training split."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """MiniLLM's flag names, so its scripts and ours are interchangeable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="folder holding raw.jsonl")
    parser.add_argument("--processed-data-dir", required=True)
    parser.add_argument("--model-path", required=True, help="local tokenizer folder")
    parser.add_argument("--model-type", required=True, help="output subfolder, e.g. gpt2")
    parser.add_argument("--data-process-workers", type=int, default=1)
    parser.add_argument("--max-prompt-length", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--dev-num", type=int, default=1000, help="first N lines form 'valid'")
    parser.add_argument("--only-prompt", action="store_true", help="write prompt tokens only")
    parser.add_argument("--prompt-processed-data-dir",
                        help="also write the prompt-only variant here, in the same process (instead of a second call "
                             "with --only-prompt)")
    parser.add_argument("--task", nargs="+", choices=sorted(TASK_PREFIXES),
                        help="step-by-step distillation: write this task's stream (target field and prefix); with "
                             "several tasks each output folder names its task by the placeholder {task}")
    parser.add_argument("--task-prefix", help="override the task's prompt prefix (default: TASK_PREFIXES)")
    parser.add_argument("--allow-empty-outputs", action="store_true",
                        help="keep (and count) rows whose output is empty or whitespace only; without it they are "
                             "refused, except in rows written by a teacher (tools/generate.py's gold_output)")
    args = parser.parse_args(argv)
    args.tasks = args.task or []
    if args.task_prefix is not None and len(args.tasks) != 1:
        parser.error("--task-prefix needs exactly one --task")
    if args.prompt_processed_data_dir and args.only_prompt:
        parser.error("--prompt-processed-data-dir writes the prompt-only variant beside the full one; drop --only-prompt")
    if len(args.tasks) > 1:
        for flag, folder in (("--processed-data-dir", args.processed_data_dir),
                             ("--prompt-processed-data-dir", args.prompt_processed_data_dir)):
            if folder is not None and "{task}" not in folder:
                parser.error(f"with several tasks, {flag} must name each task's folder by the placeholder {{task}} "
                             f"(got {folder!r})")
    return args


def outputs(args: argparse.Namespace) -> list[argparse.Namespace]:
    """One settings object per output folder: every task × (the full variant, and the prompt-only
    one when asked for), each with the fields the single-folder code reads (task, target_field,
    task_prefix, only_prompt, processed_data_dir)."""
    variants = [(args.processed_data_dir, args.only_prompt)]
    if args.prompt_processed_data_dir:
        variants.append((args.prompt_processed_data_dir, True))
    jobs = []
    for task in args.tasks or [None]:
        prefix = args.task_prefix if args.task_prefix is not None else TASK_PREFIXES.get(task, "")
        for folder, only_prompt in variants:
            jobs.append(argparse.Namespace(**{**vars(args), "task": task, "target_field": TASK_FIELDS.get(task, "output"),
                                              "task_prefix": prefix, "only_prompt": only_prompt,
                                              "processed_data_dir": folder.replace("{task}", task or "")}))
    return jobs


@dataclass
class SplitReport:
    """Counts and lengths printed after each split and recorded in the manifest (`counts`)."""

    name: str
    read: int = 0
    skipped_empty_target: int = 0
    dropped_long_prompt: int = 0
    dropped_not_shorter_than_max_length: int = 0
    empty_outputs: int = 0  # kept: a teacher's empty answer, or --allow-empty-outputs
    duplicate_rows: int = 0  # kept
    cut_at_max_length: int = 0  # kept whole; training cuts prompt + response at --max-length
    prompt_lengths: list[int] = field(default_factory=list)
    response_lengths: list[int] = field(default_factory=list)

    def counts(self, args: argparse.Namespace) -> dict[str, int]:
        counts = {"rows": self.read, "kept": len(self.prompt_lengths), "dropped_long_prompt": self.dropped_long_prompt,
                  "duplicate_rows": self.duplicate_rows, "max_prompt_length": args.max_prompt_length}
        if args.task:
            counts["skipped_empty_target"] = self.skipped_empty_target
        if args.only_prompt:
            counts["dropped_not_shorter_than_max_length"] = self.dropped_not_shorter_than_max_length
        else:
            counts |= {"empty_outputs": self.empty_outputs, "cut_at_max_length": self.cut_at_max_length,
                       "longest_response": max(self.response_lengths, default=0), "max_length": args.max_length}
        return counts

    def lines(self, args: argparse.Namespace) -> list[str]:
        def describe(lengths: list[int]) -> str:
            if not lengths:
                return "n/a"
            return f"mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)}"

        kept = len(self.prompt_lengths)
        dropped = self.dropped_long_prompt + self.dropped_not_shorter_than_max_length
        report = [f"[{self.name}] rows read {self.read}, kept {kept}, dropped {dropped}"]
        if args.task:
            report.append(f"[{self.name}]   no {args.target_field} (no {args.task} task; not counted as dropped): "
                          f"{self.skipped_empty_target}")
        report += [
            f"[{self.name}]   prompt longer than {args.max_prompt_length} tokens: "
            f"{self.dropped_long_prompt}",
        ]
        if args.only_prompt:
            report.append(
                f"[{self.name}]   prompt-only not shorter than {args.max_length} tokens: "
                f"{self.dropped_not_shorter_than_max_length}"
            )
        report.append(f"[{self.name}]   duplicates of an earlier row (kept): {self.duplicate_rows}")
        if not args.only_prompt:
            share = f" ({100 * self.cut_at_max_length / kept:.1f}%)" if kept else ""
            report += [f"[{self.name}]   empty {args.target_field} (kept): {self.empty_outputs}",
                       f"[{self.name}]   responses that training cuts at --max-length {args.max_length}: "
                       f"{self.cut_at_max_length} of {kept}{share}"]
        report += [
            f"[{self.name}] prompt tokens: {describe(self.prompt_lengths)}",
            f"[{self.name}] response tokens (with EOS): {describe(self.response_lengths)}",
        ]
        return report


def load_records(path: str) -> list[dict[str, Any]]:
    """Read and validate every line up front so that bad input is reported before any output."""
    return [normalize_instruction_record(record, path, line) for line, record in read_jsonl(path)]


def check_target_field(records: list[dict[str, Any]], path: str, field_name: str, first_line: int = 1) -> None:
    """Every record needs the target of the chosen task, as a string (empty = no such task)."""
    for line, record in enumerate(records, start=first_line):
        if not isinstance(record.get(field_name), str):
            problem = "missing" if field_name not in record else f"expected a string, got {type(record[field_name]).__name__}"
            raise DataFormatError(path, line, field_name, problem)


def written_by_teacher(record: dict[str, Any]) -> bool:
    """tools/generate.py (and generate_rationales.py) keep the gold answer of a row they rewrote."""
    return "gold_output" in record


def check_empty_fields(records: list[dict[str, Any]], path: str, args: argparse.Namespace) -> None:
    """Refuse rows whose prompt has no instruction nor input, and (plain processing) rows whose
    output is empty, unless a teacher wrote it or --allow-empty-outputs (module docstring)."""
    refuse_empty_outputs = not (args.task or args.only_prompt or args.allow_empty_outputs)
    for line, record in enumerate(records, start=1):
        if not (record["instruction"] + record["input"]).strip():
            raise DataFormatError(path, line, "instruction",
                                  "empty or whitespace only, as is 'input': the prompt would be the bare template")
        if refuse_empty_outputs and not record["output"].strip() and not written_by_teacher(record):
            raise DataFormatError(path, line, "output", "empty or whitespace only (training would teach the model "
                                                        "to answer nothing); fix the row, or pass "
                                                        "--allow-empty-outputs to keep such rows")


def write_split(
    name: str,
    records: list[dict[str, Any]],
    output_dir: str,
    args: argparse.Namespace,
    tokenizer: PreTrainedTokenizerBase,
) -> SplitReport:
    """Encode one split and publish its .bin/.idx/.jsonl; nothing is left behind on failure."""
    dtype = best_dtype(len(tokenizer))
    split_id = split_id_for(dtype)
    report = SplitReport(name, read=len(records))
    rows_with_target = [(k, r) for k, r in enumerate(records) if r[args.target_field].strip() or not args.task]
    report.skipped_empty_target = len(records) - len(rows_with_target)
    seen = set()
    encode = functools.partial(encode_instruction_example, max_prompt_length=args.max_prompt_length,
                               target_field=args.target_field, task_prefix=args.task_prefix)
    encoded = map_with_tokenizer(
        encode, [r for _, r in rows_with_target], args.model_path, args.data_process_workers, tokenizer=tokenizer
    )
    prefix = os.path.join(output_dir, f"{name}_0")
    with (
        IndexedDatasetWriter(prefix, dtype) as writer,
        atomic_open(os.path.join(output_dir, f"{name}.jsonl")) as rows,
    ):
        for (row_index, record), example in zip(rows_with_target, encoded):
            if example is None:
                report.dropped_long_prompt += 1
                continue
            if args.only_prompt:
                if len(example.prompt_ids) >= args.max_length:
                    report.dropped_not_shorter_than_max_length += 1
                    continue
                writer.add_item(example.prompt_ids)
            else:
                writer.add_item(example.prompt_ids + [split_id] + example.response_ids)
                report.empty_outputs += not record[args.target_field].strip()
                report.cut_at_max_length += len(example.prompt_ids) + len(example.response_ids) > args.max_length
            key = (record["instruction"], record["input"], record[args.target_field])
            report.duplicate_rows += key in seen
            seen.add(key)
            row = {
                "instruction": record["instruction"],
                "prompt": example.prompt,
                "input": record["input"],
                "output": record[args.target_field],
            }
            if args.task:  # plain processing keeps MiniLLM's exact .jsonl
                row.update(row=row_index, answer=record.get("answer", ""))
            rows.write(json.dumps(row) + "\n")
            report.prompt_lengths.append(len(example.prompt_ids))
            report.response_lengths.append(len(example.response_ids))
    return report


def teacher_stage_note(raw_path: str) -> str:
    """What the sidecar files beside raw.jsonl say of the teacher stage that wrote it ("" when none
    does): tools/generate.py's generation.json, tools/generate_rationales.py's raw.meta.json."""
    generation, meta = Path(raw_path).with_name("generation.json"), sidecar_path(raw_path, "meta")
    if meta.is_file():
        info, stats = json.loads(meta.read_text()), sidecar_path(raw_path, "stats")
        return (f" Its rows were written by tools/generate_rationales.py ({meta}): teacher {info.get('model')} found "
                f"{info.get('teacher_rows_written')} of its {info.get('generated_rows')} generated rows usable "
                f"({info.get('rows_dropped')} dropped) from {info.get('input')} ({info.get('rows')} rows, the first "
                f"{info.get('gold_rows')} kept gold). See {stats} for why rows were dropped and examples of what the "
                f"teacher wrote; train the teacher further, or give that stage an input with more rows.")
    if generation.is_file():
        info = json.loads(generation.read_text())
        return (f" Its rows were written by tools/generate.py ({generation}): teacher {info.get('teacher')} wrote "
                f"{info.get('generated_rows')} generated rows ({info.get('empty_responses')} empty) from "
                f"{info.get('source')} ({info.get('rows')} rows, the first {info.get('gold_rows')} kept gold); "
                f"give that stage a source with more rows than its --dev-num.")
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the process exit status (1 on bad input, with a one-line message)."""
    args = parse_args(argv)
    raw_path = os.path.join(args.data_dir, "raw.jsonl")
    jobs = outputs(args)
    try:
        records = load_records(raw_path)
        for job in jobs:
            if job.task:
                check_target_field(records, raw_path, job.target_field)
            check_empty_fields(records, raw_path, job)
        tokenizer = load_tokenizer(args.model_path)
    except (DataFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        for job in jobs:
            write_output(records, raw_path, job, tokenizer)
    except (NoTrainingDataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def write_output(records: list[dict[str, Any]], raw_path: str, args: argparse.Namespace,
                 tokenizer: PreTrainedTokenizerBase) -> None:
    """Process `records` into one output folder (`args`: one of `outputs(...)`), published whole."""
    splits = (
        {"valid": records[: args.dev_num], "train": records[args.dev_num :]}
        if args.dev_num > 0
        else {"train": records}
    )
    output_dir = os.path.join(args.processed_data_dir, args.model_type)
    variant = "prompt-only" if args.only_prompt else "full"
    dtype_name = best_dtype(len(tokenizer)).name
    task = f", task {args.task} (prefix {args.task_prefix!r})" if args.task else ""
    print(f"{raw_path}: {len(records)} rows -> {output_dir} ({variant}, dtype {dtype_name}{task})")
    if not splits["train"]:
        raise NoTrainingDataError(f"{raw_path} holds only {len(records)} rows, all taken as validation rows by "
                                  f"--dev-num {args.dev_num}: no row is left to train on."
                                  + (teacher_stage_note(raw_path) or " Give more rows or a smaller --dev-num."))
    with atomic_directory(output_dir) as staging:
        reports = {}
        for name, split_records in splits.items():
            reports[name] = write_split(name, split_records, str(staging), args, tokenizer)
            print("\n".join(reports[name].lines(args)))
        kept = {name: len(report.prompt_lengths) for name, report in reports.items()}
        if not kept["train"]:
            train = reports["train"]
            raise NoTrainingDataError(
                f"{raw_path}: none of its {len(splits['train'])} training rows was kept ({train.dropped_long_prompt} "
                f"with a prompt longer than --max-prompt-length {args.max_prompt_length}"
                + (f", {train.skipped_empty_target} without a {args.target_field}" if args.task else "")
                + (f", {train.dropped_not_shorter_than_max_length} not shorter than --max-length"
                   if args.only_prompt else "") + ")." + teacher_stage_note(raw_path))
        if args.task:
            atomic_write_json(staging / "task.json",
                              {"task": args.task, "prefix": args.task_prefix, "target_field": args.target_field})
        write_data_manifest(staging, tool="tools/process_data_dolly.py", tokenizer=tokenizer,
                            tokenizer_path=args.model_path, sources=[raw_path], splits=kept, settings={
                                "max_prompt_length": args.max_prompt_length, "max_length": args.max_length,
                                "dev_num": args.dev_num, "only_prompt": args.only_prompt, "task": args.task,
                                "task_prefix": args.task_prefix, "target_field": args.target_field},
                            counts={name: report.counts(args) for name, report in reports.items()})


if __name__ == "__main__":
    sys.exit(main())
