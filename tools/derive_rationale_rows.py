"""Rationale rows derived from other rationale rows, for the step-by-step arms of a comparison.

  python tools/derive_rationale_rows.py --input teacher.jsonl --out gold-labels.jsonl --labels gold
  python tools/derive_rationale_rows.py --input rows.jsonl --out cot.jsonl --chain-of-thought

--labels gold: every row's label task goes back to the gold label (`gold_output` /
`gold_answer`, which tools/generate_rationales.py keeps) while its rationale stays — the
"gold labels + teacher rationales" arm of distilling step-by-step.

--chain-of-thought: every rationale is followed by its conclusion, "So the answer is <answer>."
(an open-ended row without a short answer concludes with its label),
so that a teacher trained on the rationale task learns to write chain of thought whose final
answer can be parsed (tools/generate_rationales.py's one-pass mode).

Rows keep their order (the first --dev-num rows of the input are its validation split and stay
first). A row lacking a field it needs is an error naming the file, line and field.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.data.processing import DataFormatError, read_jsonl  # noqa: E402
from minillm.data.rationale import FieldError, require_string  # noqa: E402
from minillm.data.templates import CHAIN_OF_THOUGHT_CONCLUSION  # noqa: E402
from minillm.fileio import atomic_write_jsonl  # noqa: E402


def with_gold_label(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its gold label (a row that is still gold is returned as it is)."""
    if row.get("label_source", "gold") == "gold":
        return dict(row)
    answer = require_string(row, "gold_answer")
    return {**row, "output": require_string(row, "gold_output"), "answer": answer, "label_source": "gold"}


def with_chain_of_thought(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its rationale followed by its conclusion (rows without rationale unchanged).
    The conclusion states the short answer, or, for an open-ended row (no `answer`, e.g. dolly
    rows a teacher wrote rationales for), the label itself."""
    rationale = require_string(row, "rationale")
    if not rationale:
        return dict(row)
    answer = require_string(row, "answer") or require_string(row, "output").strip().removesuffix(".")
    return {**row, "rationale": f"{rationale} {CHAIN_OF_THOUGHT_CONCLUSION.format(answer=answer)}"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="rationale rows (JSON lines)")
    parser.add_argument("--out", required=True, type=Path)
    change = parser.add_mutually_exclusive_group(required=True)
    change.add_argument("--labels", choices=("gold",), help="gold: put the gold labels back")
    change.add_argument("--chain-of-thought", action="store_true", help="end every rationale with its answer")
    args = parser.parse_args(argv)
    derive = with_gold_label if args.labels == "gold" else with_chain_of_thought
    rows = []
    try:
        for line, record in read_jsonl(args.input):
            try:
                rows.append(derive(record))
            except FieldError as err:
                raise DataFormatError(str(args.input), line, err.field, err.message) from None
    except (DataFormatError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    atomic_write_jsonl(args.out, rows)
    print(f"wrote {args.out}: {len(rows)} rows ({'gold labels' if args.labels else 'chain-of-thought rationales'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
