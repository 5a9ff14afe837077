"""Tokenise Dolly-style instruction data into MiniLLM's processed layout.

Reads `{data_dir}/raw.jsonl` and writes `{split}_0.bin`, `{split}_0.idx` and `{split}.jsonl`
into `{processed_data_dir}/{model_type}/`, byte-identical to MiniLLM's own
`tools/process_data_dolly.py` for the same input and tokenizer (but always in input order).
The whole input is validated before anything is written, and each file appears only once it is
complete, so bad input never leaves partial output.
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
from minillm.fileio import atomic_open
from minillm.modeling import load_tokenizer
from minillm.data.processing import (
    DataFormatError,
    encode_instruction_example,
    map_with_tokenizer,
    normalize_instruction_record,
    read_jsonl,
)


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
    return parser.parse_args(argv)


@dataclass
class SplitReport:
    """Counts and lengths printed after each split."""

    name: str
    read: int = 0
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
        report = [
            f"[{self.name}] rows read {self.read}, kept {kept}, dropped {dropped}",
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
    encode = functools.partial(encode_instruction_example, max_prompt_length=args.max_prompt_length)
    encoded = map_with_tokenizer(
        encode, records, args.model_path, args.data_process_workers, tokenizer=tokenizer
    )
    report = SplitReport(name, read=len(records))
    prefix = os.path.join(output_dir, f"{name}_0")
    with (
        IndexedDatasetWriter(prefix, dtype) as writer,
        atomic_open(os.path.join(output_dir, f"{name}.jsonl")) as rows,
    ):
        for record, example in zip(records, encoded):
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
                "output": record["output"],
            }
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
    os.makedirs(output_dir, exist_ok=True)
    variant = "prompt-only" if args.only_prompt else "full"
    dtype_name = best_dtype(len(tokenizer)).name
    print(f"{raw_path}: {len(records)} rows -> {output_dir} ({variant}, dtype {dtype_name})")
    for name, split_records in splits.items():
        report = write_split(name, split_records, output_dir, args, tokenizer)
        print("\n".join(report.lines(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
