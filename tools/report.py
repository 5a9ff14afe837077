"""Print (and optionally save) the Rouge-L table of several evaluated models.

  python tools/report.py results/tiny/teacher/eval results/tiny/student/eval [--out table.md]
"""
from __future__ import annotations

import argparse
import sys

from minillm.fileio import atomic_write_text
from minillm.report import load_summary, summary_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("eval_dirs", nargs="+", help="eval folders (or their summary.json)")
    parser.add_argument("--metric", choices=("rougeL", "exact_match"), default="rougeL")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        table = summary_table([load_summary(d) for d in args.eval_dirs], args.metric)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{args.metric} (mean ± std over generation seeds)\n{table}", end="")
    if args.out:
        atomic_write_text(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
