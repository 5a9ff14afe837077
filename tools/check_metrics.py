"""Sanity checks of the evaluation metrics: answers that know nothing, and decoding temperature.

  python tools/check_metrics.py --data-root data --eval-set tiny [--summaries EVAL_DIR ...]

Scores, with every metric evaluate.py reports (minillm.eval.evaluation.summarize_set), answers
that know nothing about the question — the constant answer per family
(minillm.eval.references.constant_answers), the template (each row's gold output with every
world phrase blanked: the animals, facts and items the set's fact checks and answer options
name, and a multi-answer row's answer slot), the question echoed — and the gold outputs themselves; with --summaries, also the
evaluate.py outputs given (e.g. one model decoded at several temperatures). Prints one markdown
table per family (and "all"): a metric that rates a know-nothing answer near a trained model,
or moves with temperature alone, measures form or sharpness rather than knowledge.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.eval.evaluation import EvalSet, load_eval_set, summarize_set  # noqa: E402
from minillm.eval.references import constant_answers  # noqa: E402
from minillm.experiments.reading import ReportError, load_summary  # noqa: E402

# (column, summary key): the sampled value where a metric is sampled, the greedy one beside it.
COLUMNS = (("Rouge-L", "rougeL_mean"), ("Rouge-L greedy", "rougeL_greedy"), ("Rouge-L label", "rougeL_label_mean"),
           ("accuracy strict", "accuracy_strict"), ("fact P", "fact_precision_mean"), ("fact R", "fact_recall_mean"),
           ("fact F1", "fact_f1_mean"), ("validity", "validity_mean"),
           ("distinct valid / prompt", "distinct_valid_per_prompt"), ("entropy", "entropy_mean"))


def world_phrases(eval_set: EvalSet) -> list[str]:
    """Every subject and fact phrase of the set's fact checks, every answer option and every word
    in which a multi-answer row's references differ (its answer slot), longest first."""
    phrases = set()
    for row, reference in zip(eval_set.rows, eval_set.references):
        phrases.update(row.get("choices", []))
        if "facts" in row:
            phrases.update(row["facts"]["subjects"])
            phrases.update(row["facts"]["facts"])
        if isinstance(reference, list):
            words = [set(re.findall(r"\w+", text.lower())) for text in reference]
            phrases.update(set.union(*words) - set.intersection(*words))
    return sorted(phrases, key=len, reverse=True)


def template_answer(text: str, phrases: Sequence[str]) -> str:
    """`text` with every phrase of `phrases` (whole words, case-insensitive) removed."""
    if not phrases:
        return text
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(phrase) for phrase in phrases) + r")\b", re.IGNORECASE)
    return " ".join(pattern.sub("", text).split())


def trivial_answers(eval_set: EvalSet) -> dict[str, list[str]]:
    """Answer name -> one answer per row: the gold output (a list reference: its first), the
    constant per family, the template, the question echoed."""
    gold = [reference if isinstance(reference, str) else reference[0] for reference in eval_set.references]
    constant = constant_answers(eval_set.references, eval_set.families)
    phrases = world_phrases(eval_set)
    return {"gold output": gold,
            "constant per family": [constant[family] for family in eval_set.families],
            "template (world phrases blanked)": [template_answer(text, phrases) for text in gold],
            "question echoed": [row.get("instruction") or prompt for row, prompt in zip(eval_set.rows, eval_set.prompts)]}


def score(eval_set: EvalSet, texts: list[str]) -> dict:
    """summarize_set's entry for one fixed answer per row (one "seed", also the greedy decoding)."""
    return summarize_set(eval_set.references, eval_set.answers, eval_set.families, [texts], texts,
                         label_references=eval_set.label_references, fact_checks=eval_set.fact_checks)


def tables(entries: dict[str, dict]) -> str:
    """One markdown table per scope (all rows, then each family): one row per entry."""
    families = list(dict.fromkeys(family for entry in entries.values() for family in entry.get("families", {})))
    out = []
    for scope in ["all", *families]:
        out += [f"\n{scope}\n", "| answers | " + " | ".join(name for name, _ in COLUMNS) + " |",
                "|---|" + "---|" * len(COLUMNS)]
        for name, entry in entries.items():
            scoped = entry if scope == "all" else entry.get("families", {}).get(scope, {})
            cells = [f"{scoped[key]:.2f}" if key in scoped else "–" for _, key in COLUMNS]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding the eval set's folder")
    parser.add_argument("--eval-set", required=True, help="the set's name (its folder under --data-root)")
    parser.add_argument("--summaries", nargs="*", default=[], metavar="EVAL_DIR",
                        help="evaluate.py output folders (or their summary.json) to tabulate beside them")
    args = parser.parse_args(argv)
    try:
        eval_set = load_eval_set(args.data_root, args.eval_set)
        entries = {name: score(eval_set, texts) for name, texts in trivial_answers(eval_set).items()}
        for path in args.summaries:
            summary = load_summary(Path(path))
            if args.eval_set not in summary["sets"]:
                raise ReportError(f"{path}: no eval set {args.eval_set!r} in its summary")
            temperature = summary.get("sampling", {}).get("temperature")
            entries[f"{summary['model']} (T = {temperature})"] = summary["sets"][args.eval_set]
    except (ValueError, OSError, ReportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(tables(entries))
    return 0


if __name__ == "__main__":
    sys.exit(main())
