"""The first rows of a JSON-lines training file: the driver's MAX_TRAIN_ROWS.

  python tools/cap_rows.py --input data/dolly/raw.jsonl --keep-first 100 --max-rows 200 --out capped/raw.jsonl

Keeps the first --keep-first rows (the validation split: processing takes the first DEV_NUM rows
of raw.jsonl as `valid`, so they stay whole) and then at most --max-rows training rows, in file
order, so that every stage downstream (processing, the teacher's SeqKD answers, its rationales)
works on the same capped questions. Blank lines are not rows. Writes --out atomically and prints
how many rows it kept; refuses a file with fewer than --keep-first rows.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.fileio import atomic_write_text  # noqa: E402


def capped_lines(lines: list[str], keep_first: int, max_rows: int) -> list[str]:
    rows = [line for line in lines if line.strip()]
    return rows[:keep_first + max_rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="JSON-lines file (validation rows first)")
    parser.add_argument("--keep-first", type=int, default=0, help="validation rows kept whole (DEV_NUM)")
    parser.add_argument("--max-rows", required=True, type=int, help="training rows kept after them (MAX_TRAIN_ROWS)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    if args.max_rows < 1 or args.keep_first < 0:
        parser.error(f"--max-rows must be ≥ 1 and --keep-first ≥ 0 (got {args.max_rows}, {args.keep_first})")
    try:
        lines = args.input.read_text(encoding="utf-8").split("\n")  # not splitlines: U+2028 may sit inside a row
    except (OSError, UnicodeDecodeError) as err:
        print(f"error: {args.input}: {err}", file=sys.stderr)
        return 1
    kept = capped_lines(lines, args.keep_first, args.max_rows)
    if len(kept) <= args.keep_first:
        print(f"error: {args.input} has {len(kept)} rows, none left for training after the first {args.keep_first} "
              f"(DEV_NUM, the validation rows)", file=sys.stderr)
        return 1
    atomic_write_text(args.out, "".join(line + "\n" for line in kept))
    print(f"wrote {args.out}: {args.keep_first} validation + {len(kept) - args.keep_first} training rows "
          f"(of {sum(1 for line in lines if line.strip()) - args.keep_first}; --max-rows {args.max_rows})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
