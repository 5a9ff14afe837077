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

The output folder is written under a temporary name and replaces `{processed_data_dir}/{model_type}`
whole, so no file of an earlier processing survives; `data_manifest.json` records the tokenizer,
the settings and the source's sha256 (training checks it). An input that leaves no training item
is an error.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from minillm.data.indexed import IndexedDatasetWriter, best_dtype, split_id_for
from minillm.data.manifest import write_data_manifest
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
    parser.add_argument("--task", choices=sorted(TASK_PREFIXES),
                        help="step-by-step distillation: write this task's stream (target field and prefix)")
    parser.add_argument("--task-prefix", help="override the task's prompt prefix (default: TASK_PREFIXES)")
    args = parser.parse_args(argv)
    if args.task_prefix is not None and args.task is None:
        parser.error("--task-prefix needs --task")
    args.target_field = TASK_FIELDS.get(args.task, "output")
    if args.task_prefix is None:
        args.task_prefix = TASK_PREFIXES.get(args.task, "")
    return args


@dataclass
class SplitReport:
    """Counts and lengths printed after each split."""

    name: str
    read: int = 0
    skipped_empty_target: int = 0
    dropped_long_prompt: int = 0
    dropped_not_shorter_than_max_length: int = 0
    prompt_lengths: list[int] = field(default_factory=list)
    response_lengths: list[int] = field(default_factory=list)

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
    rows_with_target = [(k, r) for k, r in enumerate(records) if r[args.target_field] or not args.task]
    report.skipped_empty_target = len(records) - len(rows_with_target)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the process exit status (1 on bad input, with a one-line message)."""
    args = parse_args(argv)
    raw_path = os.path.join(args.data_dir, "raw.jsonl")
    try:
        records = load_records(raw_path)
        if args.task:
            check_target_field(records, raw_path, args.target_field)
        tokenizer = load_tokenizer(args.model_path)
    except (DataFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
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
    try:
        if not splits["train"]:
            raise NoTrainingDataError(f"{raw_path}: {len(records)} rows, none left for train after the first "
                                      f"{args.dev_num} (--dev-num) for valid")
        with atomic_directory(output_dir) as staging:
            kept = {}
            for name, split_records in splits.items():
                report = write_split(name, split_records, str(staging), args, tokenizer)
                print("\n".join(report.lines(args)))
                kept[name] = len(report.prompt_lengths)
            if not kept["train"]:
                raise NoTrainingDataError(f"{raw_path}: no training item kept from {len(splits['train'])} rows "
                                          f"(see the counts above)")
            if args.task:
                atomic_write_json(staging / "task.json",
                                  {"task": args.task, "prefix": args.task_prefix, "target_field": args.target_field})
            write_data_manifest(staging, tool="tools/process_data_dolly.py", tokenizer=tokenizer,
                                tokenizer_path=args.model_path, sources=[raw_path], splits=kept, settings={
                                    "max_prompt_length": args.max_prompt_length, "max_length": args.max_length,
                                    "dev_num": args.dev_num, "only_prompt": args.only_prompt, "task": args.task,
                                    "task_prefix": args.task_prefix, "target_field": args.target_field})
    except (NoTrainingDataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
