"""The comparison of a results folder's methods, per method × eval set [× family] × metric: each run's score is its mean over
generation seeds (or its one greedy value); with ≥ 2 runs (training seeds) the cell is the
mean ± sample std (ddof=1) of those run scores; with one run it is that run's mean ± the std over
its generation seeds, which measures generation noise only.

The comparisons are declared in one place (`declared_comparisons`): every method under test
against SFT and against its matched control arm is PRIMARY (the registry's `primary` and
`control`), Holm-adjusted per eval set and compared metric; everything else (per-family rows,
control arms against SFT, variants such as the other KD divergences) is EXPLORATORY, raw p only.
Each comparison is the paired test over the training seeds both rows share (minillm.statistics),
or, with one shared training seed, a test over the test prompts between the two checkpoints
(`PromptScores`), which measures evaluation noise only. One rule decides "≈" (`APPROX_RULE`).

Reference rows beside the models: the majority answer (the best constant label per family), the
chance level and the constant-answer row (`ReferenceFunctions`, one call each; tools/report.py
computes them with minillm/eval/references.py), all over the rows the summaries scored.
"""
from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers

from minillm.experiments.catalogue import COMPARED_METRICS, METRICS, SINGLE_VALUE_SOURCE
from minillm.experiments.compute import (
    COMPONENTS,
    ShapeError,
    arm_flops,
    model_shape,
    teacher_key,
    teacher_training_flops,
)
from minillm.experiments.methods import (
    BASELINE,
    METHODS,
    REFERENCE_FAMILIES,
    controls,
    further_controls,
    is_training_seed,
    method_info,
    method_order,
    run_order,
    training_set,
)
from minillm.experiments.reading import Results, TrainingRun, read_jsonl
from minillm.metrics import answer_correct, normalize_answer
from minillm.statistics import (
    APPROX_RULE,
    SIGNIFICANCE,
    holm_adjust,
    mcnemar_exact,
    mean_and_std,
    no_evidence_of_difference,
    paired_bootstrap,
    paired_difference,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]

SPREAD_RULE = ("± = sample std (ddof=1) over training seeds of each run's score (its mean over generation seeds, "
               "or its one greedy value); a row with one training seed shows its std over generation seeds "
               "instead (the seeds column says which).")


def run_values(entry: dict, metric: str, seeds: list) -> dict | None:
    """One run's values of `metric` in a summary entry: per generation seed when the entry has
    them, else its single value (greedy accuracy, diversity); None when absent."""
    if f"{metric}_per_seed" in entry:
        return {"gen_seeds": seeds, "per_gen_seed": entry[f"{metric}_per_seed"]}
    if isinstance(entry.get(metric), (int, float)):
        return {"gen_seeds": [SINGLE_VALUE_SOURCE.get(metric, "single value")], "per_gen_seed": [entry[metric]]}
    return None


def cell_statistics(per_run: dict[str, dict]) -> dict:
    """One method × set × metric from {run: {"gen_seeds": [...], "per_gen_seed": [...]}}."""
    runs = {run: {**values, "mean": round(mean_and_std(values["per_gen_seed"])[0], 4)}
            for run, values in per_run.items()}
    if len(runs) > 1:
        mean, std = mean_and_std([run["mean"] for run in runs.values()])
        spread = "training seeds"
    else:
        (only,) = runs.values()
        mean, std = mean_and_std(only["per_gen_seed"])
        spread = "generation seeds"
    return {"mean": round(mean, 4), "std": round(std, 4), "spread": spread, "n_train_seeds": len(runs),
            # Runs normally share their generation seeds; the fewest is the honest count.
            "n_gen_seeds": min(len(run["per_gen_seed"]) for run in runs.values()), "per_run": runs}


def spread_description(cell: dict) -> str:
    if cell["spread"] == "training seeds":
        return f"std over {cell['n_train_seeds']} training seeds"
    (only,) = cell["per_run"].values()
    if only["gen_seeds"][0] in SINGLE_VALUE_SOURCE.values():
        return f"one {only['gen_seeds'][0]} value (1 training seed)"
    if cell["n_gen_seeds"] == 1:
        return "one value (1 training seed, 1 generation seed): no spread"
    return f"std over {cell['n_gen_seeds']} generation seeds (1 training seed)"


def method_results(evaluations: dict[str, dict]) -> tuple[dict, dict]:
    """(set → metric → cell, set → family → metric → cell) from one method's {run: summary.json}."""
    gathered: dict[tuple[str, str | None], dict[str, dict[str, dict]]] = {}
    for run in run_order(evaluations):
        summary = evaluations[run]
        for set_name, entry in summary["sets"].items():
            for family, scoped in [(None, entry), *entry.get("families", {}).items()]:
                for metric in METRICS:
                    values = run_values(scoped, metric, summary["seeds"])
                    if values is not None:
                        gathered.setdefault((set_name, family), {}).setdefault(metric, {})[run] = values
    results: dict[str, dict] = {}
    families: dict[str, dict[str, dict]] = {}
    for (set_name, family), metrics in gathered.items():
        cells = {metric: cell_statistics(per_run) for metric, per_run in metrics.items()}
        if family is None:
            results[set_name] = cells
        else:
            families.setdefault(set_name, {})[family] = cells
    return results, families


ROW_COUNTS = ("rows", "answer_rows", "multi_answer_rows", "fact_rows")


def family_rows(evaluations: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """set → family → its row counts (`ROW_COUNTS`), from any summary."""
    counts: dict[str, dict[str, dict]] = {}
    for runs in evaluations.values():
        for summary in runs.values():
            for set_name, entry in summary["sets"].items():
                for family, scoped in entry.get("families", {}).items():
                    counts.setdefault(set_name, {}).setdefault(family, {
                        key: scoped[key] for key in ROW_COUNTS if key in scoped})
    return counts


_EXACT_KEYS = ("p_value", "p_holm")  # p-values stay exact in the JSON (tables print "< 0.001")


def _rounded(difference: dict) -> dict:
    return {key: round(value, 4) if isinstance(value, float) and key not in _EXACT_KEYS else value
            for key, value in difference.items()}


PRIMARY_RULE = ("Primary comparisons (declared once, minillm.experiments.comparison.declared_comparisons, from the "
                "method registry's `primary` and `control` fields): each method under test against SFT and against "
                "its matched control arm, on each eval set as a whole; their p-values are Holm-adjusted within each "
                "eval set × compared metric (the family sizes are given below). Exploratory (raw p, not adjusted): "
                "the per-family rows, control arms against SFT and variants (KD divergences other than forward KL, "
                "MiniLLM with LMOps whitening).")


def declared_comparisons(keys: list[str]) -> list[tuple[str, str, bool]]:
    """(method, baseline, primary) of every comparison the report makes, in order: each student
    against SFT, then each arm against its control; primary = the registry declares the arm a
    method under test (`Method.primary`: not a control arm, not a variant, not an unknown key)."""
    def primary(key: str) -> bool:
        return key in METHODS and METHODS[key].primary

    pairs = [(key, BASELINE, primary(key)) for key in keys
             if BASELINE in keys and key != BASELINE and method_info(key).family not in REFERENCE_FAMILIES]
    return pairs + [(method, control, primary(method)) for method, control in controls().items()
                    if method in keys and control in keys] + [
        (method, control, False) for method, control in further_controls() if method in keys and control in keys]


class _WordStemmer:
    """The Porter stemmer of rouge_score, each distinct word stemmed once (stemming is pure)."""

    def __init__(self):
        self.stem = functools.lru_cache(maxsize=None)(porter.PorterStemmer().stem)


class _MemoisedTokenizer(tokenizers.Tokenizer):
    """rouge_score's default tokenizer with stemming (minillm.metrics' Rouge-L), memoised per text
    and per word: rescoring a report's answer files tokenises each reference dozens of times."""

    def __init__(self):
        stemmer = _WordStemmer()
        self._tokens = functools.lru_cache(maxsize=1 << 16)(lambda text: tuple(tokenize.tokenize(text, stemmer)))

    def tokenize(self, text: str) -> list[str]:
        return list(self._tokens(text))


@functools.cache
def _prompt_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_MemoisedTokenizer())


def prompt_rouge_l(prediction: str, reference: str | list[str]) -> float:
    """One prediction's Rouge-L exactly as minillm.metrics.compute_metrics scores it (percent, the
    best over the references, 4 decimals), with memoised tokenisation (about 5× faster on answer files)."""
    golds = [reference] if isinstance(reference, str) else list(reference)
    if not golds:
        raise ValueError("a prediction without references")
    scorer = _prompt_scorer()
    return round(100.0 * max(scorer.score(target=gold, prediction=prediction)["rougeL"].fmeasure for gold in golds), 4)


class PromptScores:
    """Per-prompt scores of one evaluation, recomputed from its answers.jsonl files with
    minillm.metrics (cached): Rouge-L at temperature 1 (each prompt's mean over the generation
    seeds), greedy Rouge-L, greedy strict accuracy (right/wrong per answer row)."""

    def __init__(self, results: Results):
        self.results = results
        self._cache: dict[tuple, tuple[list, list] | str] = {}

    def _rouge(self, method: str, run: str, set_name: str, decoding: str) -> tuple[list[float], list] | str:
        answers = self.results.answers(method, run, set_name, decoding)
        if answers is None:
            return f"eval/{method}/{run}/{set_name}/{decoding}/answers.jsonl is absent"
        references = [row["reference"] for row in answers]
        return [prompt_rouge_l(row["prediction"], reference) for row, reference in zip(answers, references)], references

    def _compute(self, method: str, run: str, set_name: str, metric: str) -> tuple[list, list] | str:
        summary = self.results.evaluations[method][run]
        if metric == "rougeL":
            per_seed = [self._rouge(method, run, set_name, str(seed)) for seed in summary["seeds"]]
            missing = [found for found in per_seed if isinstance(found, str)]
            if missing:
                return missing[0]
            if len({len(scores) for scores, _ in per_seed}) != 1:
                return f"eval/{method}/{run}/{set_name}: generation seeds answered different numbers of prompts"
            return [float(np.mean(values)) for values in zip(*(scores for scores, _ in per_seed))], per_seed[0][1]
        if metric == "rougeL_greedy":
            return self._rouge(method, run, set_name, "greedy")
        if metric == "accuracy_strict":
            if summary["sets"][set_name].get("accuracy_decoding", "greedy") != "greedy":
                return "accuracy from sampled decodings: no one greedy answer per prompt to compare"
            answers = self.results.answers(method, run, set_name, "greedy")
            if answers is None:
                return f"eval/{method}/{run}/{set_name}/greedy/answers.jsonl is absent"
            rows = [row for row in answers if str(row.get("answer", "")).strip()]
            return ([answer_correct(row["prediction"], row["answer"], strict=True) for row in rows],
                    [row["reference"] for row in rows])
        return f"no per-prompt score for {metric}"

    def scores(self, method: str, run: str, set_name: str, metric: str) -> tuple[list, list] | str:
        """(scores, references) in prompt order, or why there are none."""
        key = (method, run, set_name, metric)
        if key not in self._cache:
            self._cache[key] = self._compute(*key)
        return self._cache[key]


def prompt_level_difference(prompts: PromptScores, method: str, baseline: str, run: str, set_name: str,
                            metric: str) -> dict | str:
    """The one-seed verdict between two checkpoints of the same training seed on the same test
    prompts: paired bootstrap of the per-prompt scores (McNemar's exact test for strict accuracy),
    or why it cannot be made."""
    found = prompts.scores(method, run, set_name, metric), prompts.scores(baseline, run, set_name, metric)
    reasons = [side for side in found if isinstance(side, str)]
    if reasons:
        return reasons[0]
    (mine, my_references), (theirs, their_references) = found
    if my_references != their_references:
        return f"eval/{method}/{run} and eval/{baseline}/{run} scored different prompts on {set_name}"
    if not mine:
        return f"no scored prompts on {set_name}"
    result = mcnemar_exact(mine, theirs) if metric == "accuracy_strict" else paired_bootstrap(mine, theirs)
    return {**result, "n_pairs": 1, "level": "prompts"}


def paired_cells(cell: dict, baseline: dict) -> dict:
    """The paired difference cell − baseline over the training seeds both have."""
    seeds = [run for run in run_order(cell["per_run"]) if is_training_seed(run) and run in baseline["per_run"]]
    difference = paired_difference([cell["per_run"][run]["mean"] for run in seeds],
                                   [baseline["per_run"][run]["mean"] for run in seeds])
    return {**difference, "seeds": seeds, "level": "training seeds"}


def apply_holm(differences: list[dict]) -> None:
    """Holm-adjust the primary differences within each eval set × metric; set "approx" on every
    difference from the p-value that applies (adjusted for primary, raw for exploratory)."""
    families: dict[tuple[str, str], list[dict]] = {}
    for difference in differences:
        difference |= {"p_holm": None, "holm_family_size": None, "survives_holm": None}
        if difference["primary"]:
            families.setdefault((difference["set"], difference["metric"]), []).append(difference)
    for members in families.values():
        adjusted = holm_adjust([member["p_value"] for member in members])
        size = sum(p is not None for p in adjusted)
        for member, p_holm in zip(members, adjusted):
            member |= {"p_holm": p_holm, "holm_family_size": size,
                       "survives_holm": None if p_holm is None else p_holm < SIGNIFICANCE}
    for difference in differences:
        difference["approx"] = no_evidence_of_difference(
            difference["p_holm"] if difference["primary"] else difference["p_value"])


def paired_differences(methods: list[dict], prompts: PromptScores | None = None) -> list[dict]:
    """Every declared comparison × set [× family] × compared metric that both sides have: over
    training seeds, or (whole sets, one shared training seed, `prompts` given) over test prompts."""
    by_key = {method["key"]: method for method in methods}
    differences = []
    for key, baseline, primary in declared_comparisons([m["key"] for m in methods if m["results"]]):
        scopes = [(set_name, None, cells) for set_name, cells in by_key[key]["results"].items()]
        scopes += [(set_name, family, cells) for set_name, families in by_key[key]["families"].items()
                   for family, cells in families.items()]
        for set_name, family, cells in scopes:
            baseline_cells = (by_key[baseline]["results"].get(set_name, {}) if family is None else
                              by_key[baseline]["families"].get(set_name, {}).get(family, {}))
            for metric in COMPARED_METRICS:
                if metric not in cells or metric not in baseline_cells:
                    continue
                difference = paired_cells(cells[metric], baseline_cells[metric])
                if difference["n_pairs"] == 1 and family is None and prompts is not None:
                    by_prompt = prompt_level_difference(prompts, key, baseline, difference["seeds"][0], set_name,
                                                        metric)
                    if isinstance(by_prompt, str):
                        difference["note"] += f" (no prompt-level test: {by_prompt})"
                    else:
                        difference = {**by_prompt, "seeds": difference["seeds"]}
                differences.append({"method": key, "baseline": baseline, "set": set_name, "family": family,
                                    "metric": metric, "primary": primary and family is None,
                                    **_rounded(difference)})
    apply_holm(differences)
    return differences


def primary_families(differences: list[dict]) -> list[dict]:
    """Each Holm family: its eval set, metric, size (comparisons with a test) and members."""
    families: dict[tuple[str, str], list[dict]] = {}
    for difference in differences:
        if difference["primary"]:
            families.setdefault((difference["set"], difference["metric"]), []).append(difference)
    return [{"set": set_name, "metric": metric, "size": members[0]["holm_family_size"],
             "members": [[member["method"], member["baseline"]] for member in members]}
            for (set_name, metric), members in families.items()]


def claims(comparison: dict) -> list[dict]:
    """Per primary pair and eval set, what a sentence of the prose needs: each compared metric's
    difference with its interval, raw and Holm-adjusted p and whether it survives Holm, beside
    both rows' Rouge-L at temperature 1 and greedy and their mean per-token entropy."""
    by_key = {method["key"]: method for method in comparison["methods"]}
    grouped: dict[tuple[str, str, str], dict] = {}
    for difference in comparison["paired_differences"]:
        if not difference["primary"]:
            continue
        method, baseline, set_name = difference["method"], difference["baseline"], difference["set"]
        claim = grouped.setdefault((method, baseline, set_name), {
            "method": method, "baseline": baseline, "set": set_name, "differences": {},
            "values": {side: {metric: (by_key[key]["results"].get(set_name, {}).get(metric) or {}).get("mean")
                              for metric in ("rougeL", "rougeL_greedy", "entropy", "accuracy_strict")}
                       for side, key in (("method", method), ("baseline", baseline))}})
        claim["differences"][difference["metric"]] = {
            key: difference.get(key) for key in ("mean_difference", "ci_low", "ci_high", "p_value", "p_holm",
                                                 "survives_holm", "holm_family_size", "level", "test", "n_pairs",
                                                 "n_prompts", "note")}
    return list(grouped.values())


def find_difference(comparison: dict, method: str, baseline: str, set_name: str, metric: str,
                    family: str | None = None) -> dict | None:
    return next((d for d in comparison["paired_differences"]
                 if (d["method"], d["baseline"], d["set"], d["family"], d["metric"]) ==
                 (method, baseline, set_name, family, metric)), None)


# ---------------------------------------------------------------- reference rows: majority, chance, constant answer

def majority_answer_accuracy(rows: list[dict]) -> dict[str, dict]:
    """family → {"answer_rows", "majority_answer", "accuracy"}: accuracy (percent) of always
    answering the family's most frequent normalised gold answer, over its rows with an answer;
    rows without a `category` count as family "all"."""
    by_family: dict[str, Counter] = {}
    for row in rows:
        answer = normalize_answer(str(row.get("answer", "")))
        if answer:
            by_family.setdefault(row.get("category") or "all", Counter())[answer] += 1
    result = {}
    for family, counts in by_family.items():
        answer, count = counts.most_common(1)[0]
        total = sum(counts.values())
        result[family] = {"answer_rows": total, "majority_answer": answer, "accuracy": round(100.0 * count / total, 4)}
    return result


def pooled_majority_accuracy(families: dict[str, dict]) -> float:
    """The set-level accuracy of answering each family's majority answer (row-weighted)."""
    correct = sum(f["accuracy"] * f["answer_rows"] / 100.0 for f in families.values())
    return round(100.0 * correct / sum(f["answer_rows"] for f in families.values()), 4)


class ReferenceUnavailable(Exception):
    """Why a reference row cannot be computed (said in the report instead of the row)."""


def eval_set_sources(evaluations: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """set → {"path": its eval file (summary.json "path"), "rows": the rows the summaries scored
    (the first `rows` of the file: MAX_EVAL_ROWS; the fewest when runs differ), "answers": whether
    it has answer rows}."""
    sources: dict[str, dict] = {}
    for runs in evaluations.values():
        for summary in runs.values():
            for set_name, entry in summary["sets"].items():
                source = sources.setdefault(set_name, {"path": entry.get("path"), "rows": None, "answers": False})
                if isinstance(entry.get("rows"), int):
                    source["rows"] = min(entry["rows"], source["rows"] or entry["rows"])
                source["answers"] |= "answer_rows" in entry or "accuracy_per_seed" in entry
    return sources


def scored_eval_rows(source: dict) -> list[dict]:
    """The rows of an eval set the summaries scored; ReferenceUnavailable when the file is absent."""
    path = source["path"]
    if not path or not Path(path).is_file():
        raise ReferenceUnavailable(f"eval set file {path} (summary.json \"path\") is absent")
    rows = read_jsonl(Path(path))
    return rows[:source["rows"]] if source["rows"] is not None else rows


def majority_baselines(sources: dict[str, dict]) -> tuple[dict, dict]:
    """(set → {"accuracy", "families", "rows"}, set → why it is missing) over the rows the
    summaries scored. Only sets with answers get an entry; an unreadable eval set is a reason,
    not a crash."""
    baselines, missing = {}, {}
    for set_name, source in sources.items():
        if not source["answers"]:
            continue
        try:
            rows = scored_eval_rows(source)
        except ReferenceUnavailable as reason:
            missing[set_name] = str(reason)
            continue
        families = majority_answer_accuracy(rows)
        if families:
            baselines[set_name] = {"path": source["path"], "rows": len(rows),
                                   "accuracy": pooled_majority_accuracy(families), "families": families}
    return baselines, missing


def first_rows(eval_set, rows: int | None):
    """An eval set (a dataclass with rows, prompts, references) cut to its first `rows` rows (None:
    all), as evaluate.py's --max-eval-rows scores it."""
    if rows is None:
        return eval_set
    return dataclasses.replace(eval_set, rows=eval_set.rows[:rows], prompts=eval_set.prompts[:rows],
                               references=eval_set.references[:rows])


@dataclasses.dataclass(frozen=True)
class ReferenceFunctions:
    """How the reference rows are computed, one call each (tools/report.py wires them to
    minillm/eval/references.py: the evaluation layer, which this package does not import).
    chance(set name, source) → {"families", "pooled", "rows"}; constant_answer(set name, source) →
    {"answers": family → text, "entry": a summary.json entry}; `unavailable`: why they are None."""
    chance: Callable[[str, dict], dict] | None = None
    constant_answer: Callable[[str, dict], dict] | None = None
    unavailable: str = "not computed (tools/report.py computes them with minillm/eval/references.py)"


def reference_rows(sources: dict[str, dict], functions: ReferenceFunctions) -> dict:
    """Per eval set: the chance level (sets with answers whose rows name their options) and the
    constant-answer row, or the reason each is missing."""
    chance, constant, missing = {}, {}, {"chance": {}, "constant_answer": {}}
    for set_name, source in sources.items():
        try:
            rows = scored_eval_rows(source)
        except ReferenceUnavailable as reason:
            missing["constant_answer"][set_name] = str(reason)
            if source["answers"]:
                missing["chance"][set_name] = str(reason)
            continue
        if source["answers"]:
            if not any(row.get("choices") for row in rows):
                missing["chance"][set_name] = "its rows name no answer options (`choices`): chance is undefined"
            elif functions.chance is None:
                missing["chance"][set_name] = functions.unavailable
            else:
                try:
                    chance[set_name] = functions.chance(set_name, source)
                except (ReferenceUnavailable, ValueError) as reason:
                    missing["chance"][set_name] = str(reason)
        if functions.constant_answer is None:
            missing["constant_answer"][set_name] = functions.unavailable
            continue
        try:
            found = functions.constant_answer(set_name, source)
        except (ReferenceUnavailable, ValueError) as reason:
            missing["constant_answer"][set_name] = str(reason)
            continue
        results, families = method_results({"constant": {"seeds": ["constant answer"],
                                                         "sets": {set_name: found["entry"]}}})
        constant[set_name] = {"answers": found["answers"], "results": results.get(set_name, {}),
                              "families": families.get(set_name, {})}
    return {"chance": chance, "constant_answer": constant, "reference_missing": missing}


# ---------------------------------------------------------------- budgets and teacher-written data

def stream_tokens(final: dict, stream: str, single_stream: bool) -> int | None:
    """Tokens a run trained on from one stream: final.json's "tokens_by_stream" (token-level),
    "rollout_tokens" / "ptx_tokens" (on-policy runs, GKD, the control arms); a one-task-stream run
    counts its only stream (named after its data, e.g. "default", not after the catalogue's
    "label"), or its "tokens" when final.json has no per-stream counts."""
    if stream == "rollout":
        return final.get("rollout_tokens")
    if stream == "pretraining":
        return final.get("ptx_tokens")
    by_stream = final.get("tokens_by_stream") or {}
    if stream in by_stream:
        return by_stream[stream]
    if not single_stream:
        return None
    if len(by_stream) == 1:
        return next(iter(by_stream.values()))
    # "tokens" counts every input token; with generated responses it is not the data's alone
    return None if by_stream or "rollout_tokens" in final else final.get("tokens")


def _mean_or_none(values) -> float | None:
    values = [value for value in values if value is not None]
    return round(float(np.mean(values)), 1) if values else None


_COUNTS = ("tokens", "rollout_tokens", "ptx_tokens", "teacher_sampled_tokens")


def training_budget(streams: tuple[tuple[str, str], ...], runs: dict[str, TrainingRun]) -> dict:
    """Means over the finished runs of final.json's steps, time, counts and tokens by source (the
    registry's `streams` of the method); a source the runs do not count is None."""
    finals = {run: runs[run].final for run in run_order(runs) if runs[run].final is not None}
    budget = {"runs": len(finals), "unfinished_runs": len(runs) - len(finals),
              "per_run": {run: {k: final[k] for k in ("steps", "tokens_by_stream", "supervised_tokens",
                                                      "train_seconds", *_COUNTS)
                                if k in final}
                          for run, final in finals.items()}}
    if not finals:
        return budget
    by_source: dict[str, float | None] = {}  # a source with any stream uncounted is None, not understated
    single_task_stream = len([stream for stream, _ in streams if stream not in ("rollout", "pretraining")]) == 1
    for stream, source in streams:
        mean = _mean_or_none(stream_tokens(final, stream, single_task_stream) for final in finals.values())
        counted = by_source.get(source, 0.0)
        by_source[source] = None if mean is None or counted is None else counted + mean
    budget["tokens_by_source"] = by_source
    for name in ("steps", "supervised_tokens", "train_seconds", *_COUNTS):
        budget[name] = _mean_or_none(final.get(name) for final in finals.values())
    epochs = [final["epochs"] for final in finals.values() if final.get("epochs") is not None]
    budget["epochs"] = float(np.mean(epochs)) if epochs else None  # unrounded: it divides teacher-written tokens
    return budget


def cumulative_budgets(methods: list[dict]) -> None:
    """Add each budget's steps and tokens including its init's training ("steps_with_init",
    "tokens_with_init") and "exceeds_sft": a student with more steps or tokens than SFT."""
    by_key = {method["key"]: method for method in methods}

    def totals(key: str) -> tuple[float | None, float | None]:
        budget = by_key[key]["budget"] if key in by_key else {}
        if not budget.get("runs"):
            return None, None
        steps = budget["steps"]
        counts = list(budget["tokens_by_source"].values())
        tokens = None if not counts or None in counts else sum(counts)
        init = method_info(key).init_method
        if init is not None:
            init_steps, init_tokens = totals(init)
            steps = None if steps is None or init_steps is None else steps + init_steps
            tokens = None if tokens is None or init_tokens is None else tokens + init_tokens
        return steps, tokens

    sft_steps, sft_tokens = totals(BASELINE)
    for method in methods:
        if not method["budget"]["runs"]:
            continue
        steps, tokens = totals(method["key"])
        method["budget"] |= {"steps_with_init": steps, "tokens_with_init": tokens}
        method["budget"]["exceeds_sft"] = (
            method["family"] not in REFERENCE_FAMILIES and method["key"] != BASELINE
            and any(mine is not None and sft is not None and mine > sft
                    for mine, sft in ((steps, sft_steps), (tokens, sft_tokens))))


def adaptive_outputs(results: Results) -> dict[str, dict]:
    """DistiLLM's adaptive student outputs, per method and run, from each validation record that
    carries them (log.jsonl; the latest record per step): the validation loss, p after the rule's
    update and the replay buffer's size. p rises only when a validation loss reaches the rule's
    reference (the first validation's loss, then the loss at the last rise) + loss_eps, so the
    highest loss above the first one says how close a run came; the sampled and replayed tokens are
    None while a run is unfinished. Methods without them are absent."""
    traced: dict[str, dict] = {}
    for key in method_order(set(results.training)):
        for run in run_order(results.training[key]):
            training = results.training[key][run]
            by_step = {record["step"]: record for record in training.records
                       if record.get("event") == "eval" and "sgo_probability" in record}
            if not by_step:
                continue
            points = [by_step[step] for step in sorted(by_step)]
            losses = [point["valid_loss"] for point in points]
            final = training.final or {}
            method = traced.setdefault(key, {"loss_eps": None, "runs": {}})
            method["loss_eps"] = method["loss_eps"] if method["loss_eps"] is not None else (
                training.config or {}).get("sgo_loss_eps")
            sampled = None if training.final is None else {  # a finished run that sampled nothing records no count
                kind: final.get(kind, 0) for kind in ("rollout_tokens", "replayed_tokens")}
            method["runs"][run] = {
                "steps": [point["step"] for point in points], "valid_loss": losses,
                "probability": [point["sgo_probability"] for point in points],
                "replay_buffer": [point["replay_buffer"] for point in points],
                "highest_above_first": max(losses) - losses[0],
                "rollout_tokens": sampled and sampled["rollout_tokens"],
                "replayed_tokens": sampled and sampled["replayed_tokens"]}
    return traced


def teacher_data_summary(stats: dict) -> dict:
    """rows written / dropped, the parse failure rate and, when the file has them, the
    consistency rate and the teacher-label accuracy (percent)."""
    parse = stats.get("parse") or {}
    failure_rate = parse.get("failure_rate")
    return {"rows_written": stats.get("teacher_rows_written"), "rows_dropped": stats.get("rows_dropped"),
            "failure_rate": None if failure_rate is None else round(100.0 * failure_rate, 2),
            "consistency_rate": stats.get("consistency_rate"),
            "teacher_label_accuracy": stats.get("teacher_label_accuracy", parse.get("teacher_label_accuracy"))}


def scored_rows(evaluations: dict[str, dict[str, dict]]) -> dict[str, list[int]]:
    """set → the distinct numbers of rows its summaries scored (one number unless runs differ)."""
    rows: dict[str, set[int]] = {}
    for runs in evaluations.values():
        for summary in runs.values():
            for set_name, entry in summary["sets"].items():
                if isinstance(entry.get("rows"), int):
                    rows.setdefault(set_name, set()).add(entry["rows"])
    return {set_name: sorted(counts) for set_name, counts in rows.items()}


def stages_in_run_order(stages: list[dict]) -> list[dict]:
    """Stages by when they finished (ISO timestamps sort as text); undated ones last."""
    return sorted(stages, key=lambda stage: (stage.get("finished_at") is None, stage.get("finished_at") or ""))


# ---------------------------------------------------------------- compute

def _shape_candidates(results: Results, key: str, run_flag: str) -> list[str]:
    """Where a model of `key` may be: its eval summaries' model_path, then its runs' `run_flag`
    (the student's or teacher's init: the same shape)."""
    evaluated = [summary.get("model_path") for summary in results.evaluations.get(key, {}).values()]
    trained = [(run.config or {}).get(run_flag) for run in results.training.get(key, {}).values()]
    return [path for path in evaluated + trained if path]


def compute_accounting(methods: list[dict], results: Results) -> dict:
    """Each method's "compute" (minillm.experiments.compute: FLOPs by component, its own total and
    with its init's) and the shapes used ({"models": method key → shape, "missing": key → why};
    a teacher's key holds the teacher's shape)."""
    shapes, missing = {}, {}

    def shape(role: str, candidates: list[str]) -> int | None:
        if role not in shapes and role not in missing:
            try:
                shapes[role] = model_shape(candidates)
            except ShapeError as err:
                missing[role] = str(err)
        return shapes[role]["matmul_parameters"] if role in shapes else None

    by_key = {method["key"]: method for method in methods}
    for method in methods:
        key, info = method["key"], method_info(method["key"])
        runs = results.training.get(key, {})
        config = next((run.config for run in (runs[r] for r in run_order(runs)) if run.final and run.config), None)
        if not method["budget"]["runs"]:
            method["compute"] = {**dict.fromkeys(COMPONENTS), "own": None, "shared": info.family == "teacher",
                                 "missing": "no finished training run"}
            continue
        if info.family == "teacher":
            own = teacher_training_flops(method["budget"], shape(key, _shape_candidates(results, key, "model_path")))
            why = None if own is not None else "the teacher's shape or token count is unknown"
            method["compute"] = {**dict.fromkeys(COMPONENTS), "own": own, "shared": True, "missing": why}
            continue
        student = shape(key, _shape_candidates(results, key, "model_path"))
        teacher = teacher_key(info)
        teacher_n = shape(teacher, _shape_candidates(results, teacher, "model_path") + [
            (run.config or {}).get("teacher_model_path") for run in runs.values()
            if (run.config or {}).get("teacher_model_path")]) if teacher else None
        method["compute"] = {**arm_flops(info, method["budget"], config, student, teacher_n), "shared": False,
                             "teacher": teacher}

    def with_init(key: str) -> float | None:
        compute = by_key[key].get("compute", {}) if key in by_key else {}
        init = method_info(key).init_method
        if compute.get("own") is None:
            return None
        if init is None:
            return compute["own"]
        before = with_init(init)
        return None if before is None else compute["own"] + before

    for method in methods:
        method["compute"]["with_init"] = with_init(method["key"])
    return {"models": shapes, "missing": missing}


# ---------------------------------------------------------------- labels true of the run

CORPUS_DATA = " + the pretraining corpus"


def corpus_used(results: Results, key: str) -> bool:
    """Whether a method's runs had a pretraining corpus: not when driver.json records none, nor
    when every finished run counted 0 pretraining tokens."""
    if results.plan is not None and "pretraining_corpus" in results.plan and results.plan["pretraining_corpus"] is None:
        return False
    finals = [run.final for run in results.training.get(key, {}).values() if run.final is not None]
    return not (finals and all(final.get("ptx_tokens") == 0 for final in finals))


def portable_paths(value, roots: list[Path]):
    """`value` (JSON-like) with every absolute path under one of `roots` written relative to it:
    a committed report carries no writer's absolute paths. Roots in order, the first that holds a
    path wins (the work root, the repository, the results folder)."""
    if isinstance(value, dict):
        return {key: portable_paths(item, roots) for key, item in value.items()}
    if isinstance(value, list):
        return [portable_paths(item, roots) for item in value]
    if isinstance(value, tuple):
        return tuple(portable_paths(item, roots) for item in value)
    if isinstance(value, str):
        for root in roots:
            value = value.replace(f"{root}/", "")
            if value == str(root):
                value = "."
        return value
    return value


def report_roots(results: Results) -> list[Path]:
    """The roots report paths are made relative to, each as written and resolved: WORK (driver.json),
    the repository, the results folder."""
    work = ((results.plan or {}).get("settings") or {}).get("WORK")
    roots = []
    for root in [Path(work)] if work else []:
        roots += [root, root.resolve()]
    roots += [REPOSITORY_ROOT, results.root.resolve(), results.root.absolute()]
    return [root for root in dict.fromkeys(roots) if root.is_absolute() and len(root.parts) > 2]


# ---------------------------------------------------------------- the comparison object

def build_comparison(results: Results, prompt_tests: bool = True,
                     references: ReferenceFunctions = ReferenceFunctions()) -> dict:
    """Everything the report shows, as one JSON-able object (comparison.json). `prompt_tests`:
    give one-training-seed comparisons their prompt-level test (reads answers.jsonl);
    `references`: how to compute the chance and constant-answer rows."""
    keys = method_order(set(results.evaluations) | set(results.training))
    methods = []
    data_sources = (results.plan or {}).get("data_sources", {})
    for key in keys:
        info = method_info(key)
        with_corpus = corpus_used(results, key)
        streams = info.streams if with_corpus else tuple(s for s in info.streams if s[1] != "pretraining")
        evaluated = results.evaluations.get(key, {})
        cells, family_cells = method_results(evaluated)
        methods.append({
            "key": key, "label": info.label, "family": info.family, "init": info.init,
            "objective": info.objective + ("" if with_corpus or streams == info.streams else
                                           " (no pretraining corpus in this run: that term is off)"),
            "data": info.data if with_corpus else info.data.replace(CORPUS_DATA, ""), "sources": dict(streams),
            "primary": key in METHODS and METHODS[key].primary and info.family not in REFERENCE_FAMILIES
            and key != BASELINE,
            "training_set": data_sources.get(training_set(key)),
            "evaluated_runs": run_order(evaluated), "trained_runs": run_order(results.training.get(key, {})),
            "results": cells, "families": family_cells,
            "budget": training_budget(streams, results.training.get(key, {})),
        })
    cumulative_budgets(methods)
    compute = compute_accounting(methods, results)
    has_baseline = any(m["key"] == BASELINE and m["results"] for m in methods)
    sets = list(dict.fromkeys(s for m in methods for s in m["results"]))
    sources = eval_set_sources(results.evaluations)
    majority, majority_missing = majority_baselines(sources)
    stages = stages_in_run_order(results.stages)
    stage_seconds = [stage["seconds"] for stage in stages if "seconds" in stage]
    decodings = sorted({entry["accuracy_decoding"] for runs in results.evaluations.values()
                        for summary in runs.values() for entry in summary["sets"].values()
                        if "accuracy_decoding" in entry})
    differences = paired_differences(methods, PromptScores(results) if prompt_tests else None)
    comparison = {
        "results_dir": str(results.root),
        "spread_rule": SPREAD_RULE,
        "approx_rule": APPROX_RULE,
        "primary_rule": PRIMARY_RULE,
        "significance": SIGNIFICANCE,
        "baseline": BASELINE if has_baseline else None,
        "sets": sets,
        "accuracy_sets": [s for s in sets if any("accuracy_strict" in m["results"].get(s, {}) for m in methods)],
        "accuracy_decoding": decodings,
        "rows_scored": scored_rows(results.evaluations),
        "generation_seeds": sorted({tuple(summary["seeds"]) for runs in results.evaluations.values()
                                    for summary in runs.values()}),
        "methods_not_run": (results.plan or {}).get("methods_not_run", []),
        "max_eval_rows": (results.plan or {}).get("max_eval_rows"),
        "teacher_cache_top_k": (results.plan or {}).get("teacher_cache_top_k"),
        "pretraining_corpus": (results.plan or {}).get("pretraining_corpus"),
        "family_rows": family_rows(results.evaluations),
        "methods": methods,
        "paired_differences": differences,
        "primary_families": primary_families(differences),
        "majority_answer": majority,
        "majority_answer_missing": majority_missing,
        **reference_rows(sources, references),
        "compute": compute,
        "teacher_data": {path: teacher_data_summary(stats) for path, stats in results.teacher_data.items()},
        "adaptive_outputs": adaptive_outputs(results),
        "stages": [{"name": stage.get("name"), "seconds": stage.get("seconds"),
                    "finished_at": stage.get("finished_at")} for stage in stages],
        "stage_seconds_total": round(sum(stage_seconds), 1) if stage_seconds else None,
    }
    comparison["claims"] = claims(comparison)
    return portable_paths(comparison, report_roots(results))
