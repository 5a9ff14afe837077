"""The cross-tokenizer experiment's table: each arm's measures over training seeds, and its paired
difference to a baseline arm with the 95% confidence interval (minillm.statistics.paired_difference).

  python scripts/xtok/paired_table.py results/xtok/comparison_tokenizer_free.json \
      --arms xt_seqkd xt_uld ... --seeds 1 2 3 --baseline xt_seqkd --out results/xtok/paired.md

Reads the rows `tools/compare_to_teacher.py --tokenizer-free` wrote, named `<arm>_s<seed>`; runs that
share a seed share the data order (and, within a tokenizer, the init), so differences pair by seed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from minillm.fileio import atomic_write_text  # noqa: E402
from minillm.statistics import TEST_NAME, mean_and_std, paired_difference  # noqa: E402

# (field, heading, digits): lower is nearer the teacher for the first two, higher for Rouge-L.
MEASURES = [("teacher_bpc_own_samples", "teacher bits/char, own samples ↓", 3),
            ("bpc_on_teacher_samples", "bits/char on teacher samples ↓", 3),
            ("rougeL_mean", "Rouge-L ↑", 2)]


def paired_table(rows: list[dict], arms: list[str], seeds: list[int], baseline: str) -> str:
    by_name = {row["model"]: row for row in rows}
    missing = [f"{arm}_s{seed}" for arm in arms for seed in seeds if f"{arm}_s{seed}" not in by_name]
    if missing:
        raise SystemExit(f"error: no comparison row for {', '.join(missing)}")
    values = {arm: {field: [by_name[f"{arm}_s{seed}"][field] for seed in seeds] for field, _, _ in MEASURES}
              for arm in arms}
    lines = [f"Mean ± std over training seeds {' '.join(map(str, seeds))}; Δ = paired difference to {baseline} "
             f"[95% CI].", "",
             "| arm | " + " | ".join(f"{heading} | Δ" for _, heading, _ in MEASURES) + " |",
             "|---|" + "---|---|" * len(MEASURES)]
    for arm in arms:
        cells = []
        for field, _, digits in MEASURES:
            mean, std = mean_and_std(values[arm][field])
            cells.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
            if arm == baseline:
                cells.append("–")
                continue
            difference = paired_difference(values[arm][field], values[baseline][field])
            if difference["ci_low"] is None:
                cells.append(f"{difference['mean_difference']:+.{digits}f} (n={difference['n_pairs']})")
            else:
                cells.append(f"{difference['mean_difference']:+.{digits}f} [{difference['ci_low']:+.{digits}f}, "
                             f"{difference['ci_high']:+.{digits}f}]")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines + ["", f"{TEST_NAME}; a CI that contains 0 is no evidence of a difference."]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("comparison", type=Path, help="comparison_tokenizer_free.json")
    parser.add_argument("--arms", nargs="+", required=True)
    parser.add_argument("--seeds", nargs="+", type=int, required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.baseline not in args.arms:
        parser.error(f"--baseline {args.baseline} is not among --arms")
    table = paired_table(json.loads(args.comparison.read_text())["rows"], args.arms, args.seeds, args.baseline)
    atomic_write_text(args.out, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
