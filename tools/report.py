"""Print (and optionally save) the Rouge-L and exact-match tables of several evaluated models.

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
    parser.add_argument("--metrics", nargs="+", choices=("rougeL", "exact_match", "accuracy"),
                        default=["rougeL", "exact_match", "accuracy"])
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    try:
        summaries = [load_summary(d) for d in args.eval_dirs]
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    text = "\n".join(f"{metric} (mean ± std over generation seeds)\n\n{summary_table(summaries, metric)}"
                     for metric in args.metrics)
    print(text, end="")
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
