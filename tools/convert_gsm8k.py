"""GSM8K as instruction data that carries its own step-by-step rows: a RAW_DIR and an eval set.

  python tools/convert_gsm8k.py --input ../shared/data/gsm8k --out data/gsm8k

Writes OUT/raw.jsonl (the train split, in GSM8K's order: the driver's first DEV_NUM rows are its
validation split) and OUT/valid.jsonl (the test split), one row per question:

  instruction  the question
  input        ""
  output       the worked solution, then "The answer is N." on its own line (what every
               instruction-following arm learns to write, and what strict accuracy reads)
  rationale    the worked solution (calculator annotations `<<48/2=24>>` removed, as in
               minillm/data/rationale.py)
  answer       N, a canonical number ("1,000" -> "1000")

so RAW_DIR=OUT trains every arm, the step-by-step rows come from the same rows
(tools/import_rationales.py --source raw, same split), and EVAL_DATA_ROOT=OUT's parent with
EVAL_SETS=OUT's name scores the test split. Bad input stops with file:line: field and writes
nothing.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.data.processing import DataFormatError, read_jsonl  # noqa: E402
from minillm.data.rationale import FieldError, require_string, split_gsm8k_solution  # noqa: E402
from minillm.data.templates import ANSWER_SENTENCE  # noqa: E402
from minillm.fileio import atomic_write_jsonl  # noqa: E402

SPLITS = {"train": "raw.jsonl", "test": "valid.jsonl"}


def instruction_row(record: dict) -> dict:
    rationale, answer = split_gsm8k_solution(require_string(record, "answer"))
    return {"instruction": require_string(record, "question").strip(), "input": "",
            "output": f"{rationale}\n{ANSWER_SENTENCE.format(answer=answer)}", "rationale": rationale,
            "answer": answer}


def convert_split(path: Path) -> list[dict]:
    rows = []
    for line, record in read_jsonl(path):
        try:
            rows.append(instruction_row(record))
        except FieldError as error:
            raise DataFormatError(path, line, error.field, error.message) from None
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="GSM8K's folder (train.jsonl, test.jsonl)")
    parser.add_argument("--out", required=True, type=Path, help="folder for raw.jsonl and valid.jsonl")
    args = parser.parse_args(argv)
    try:
        converted = {name: convert_split(args.input / f"{split}.jsonl") for split, name in SPLITS.items()}
    except (DataFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, rows in converted.items():
        atomic_write_jsonl(args.out / name, rows)
        print(f"wrote {args.out / name}: {len(rows)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
