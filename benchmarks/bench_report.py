"""The report's cost on a fabricated main-command folder: one training seed, every default arm,
ROWS scored prompts × 3 generation seeds + greedy. Times `build_comparison` with and without the
one-seed prompt-level tests (per-prompt Rouge-L from answers.jsonl, paired bootstraps, McNemar).

  python benchmarks/bench_report.py [--rows 300] [--methods 10] [--out bench.json]
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from minillm.experiments.comparison import build_comparison  # noqa: E402
from minillm.experiments.methods import default_arms, select  # noqa: E402
from minillm.experiments.reading import load_results  # noqa: E402
from minillm.fileio import atomic_write_json, atomic_write_jsonl  # noqa: E402

WORDS = "the a fox cat dog bird runs sleeps sings barks answer is so big small legs has four two".split()
SEEDS = (10, 20, 30)


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20))) + "."


def fabricate(root: Path, methods: list[str], rows: int) -> None:
    rng = random.Random(0)
    references = [sentence(rng) for _ in range(rows)]
    answers = [rng.choice(("fox", "cat", "dog")) for _ in range(rows)]
    for method in methods:
        run_dir = root / "eval" / method / "seed10"
        for decoding in [*map(str, SEEDS), "greedy"]:
            atomic_write_jsonl(run_dir / "tiny" / decoding / "answers.jsonl", [
                {"prompt": "q", "reference": reference, "prediction": sentence(rng) + f" The answer is "
                 f"{rng.choice(('fox', 'cat', 'dog'))}.", "answer": answer}
                for reference, answer in zip(references, answers)])
        entry = {"rows": rows, "path": "/none", "rougeL_per_seed": [rng.uniform(30, 60) for _ in SEEDS],
                 "rougeL_greedy": rng.uniform(30, 60), "answer_rows": rows, "accuracy_decoding": "greedy",
                 "accuracy_strict": rng.uniform(0, 100)}
        atomic_write_json(run_dir / "summary.json", {"model": method, "model_path": "/none", "seeds": list(SEEDS),
                                                     "sets": {"tiny": entry}})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--methods", type=int, default=10, help="the first N default arms")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    methods = select(["default"], ["forward_kl"])[0][:args.methods]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "results"
        fabricate(root, methods, args.rows)
        timings = {}
        for name, prompt_tests in (("without_prompt_tests", False), ("with_prompt_tests", True)):
            started = time.process_time()
            comparison = build_comparison(load_results(root), prompt_tests=prompt_tests)
            timings[name] = round(time.process_time() - started, 2)
        tested = sum(d.get("level") == "prompts" for d in comparison["paired_differences"])
    result = {"rows": args.rows, "methods": methods, "prompt_level_tests": tested, "cpu_seconds": timings}
    print(f"{len(methods)} arms ({', '.join(methods)}), {args.rows} rows, {tested} prompt-level tests: "
          f"build_comparison {timings['without_prompt_tests']} s CPU without them, "
          f"{timings['with_prompt_tests']} s with them")
    if args.out:
        atomic_write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
