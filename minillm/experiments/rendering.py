"""The comparison as markdown tables, CSV and a README section."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from minillm.experiments.catalogue import (
    CHANCE_LABEL,
    COMPARED_METRICS,
    CONSTANT_LABEL,
    MAIN_METRICS,
    MAJORITY_LABEL,
    METRIC_LABELS,
    TEACHER_ACCURACY_TARGET,
)
from minillm.experiments.compute import COMPONENTS
from minillm.experiments.methods import BASELINE, REFERENCE_FAMILIES, SOURCES
from minillm.experiments.comparison import (
    SPREAD_RULE,
    find_difference,
    spread_description,
)
from minillm.experiments.reading import ReportError
from minillm.statistics import (
    APPROX_MARK,
    APPROX_RULE,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    format_p,
)

EXCEEDS_MARK = "▲"
PROMPT_LEVEL_MARK = "†"


STATISTICS_NOTE = (f"{APPROX_RULE} Δ = method − baseline, mean over the training seeds both have (paired: a seed "
                   "fixes the student init and data order for every method); [95% CI] from Student's t with "
                   "n − 1 degrees of freedom; p two-sided, raw, and Holm-adjusted (p Holm) for the primary "
                   "comparisons; p < 0.001 prints as \"< 0.001\" (comparison.json keeps the exact value). "
                   "\"(all n equal)\": every paired difference is the same, so there is no t interval and p is the "
                   f"exact sign test over the seeds. {PROMPT_LEVEL_MARK} = one training seed: a paired bootstrap over "
                   f"the test prompts ({BOOTSTRAP_RESAMPLES:,} resamples, seed {BOOTSTRAP_SEED}; McNemar's exact test "
                   "for accuracy) between the two checkpoints — it measures evaluation noise only, not whether the "
                   "method beats the baseline across training seeds.")
MAJORITY_NOTE = (f"{MAJORITY_LABEL}: per reasoning family, always answering that family's most frequent gold "
                 "answer among the rows scored: the best any constant label can do, a ceiling for constant guessing, "
                 "not the chance level.")
CHANCE_NOTE = (f"{CHANCE_LABEL}: the expected accuracy of picking uniformly among the answer options each question "
               "names (its `choices`), over the rows scored (minillm/eval/references.py).")
CONSTANT_NOTE = (f"{CONSTANT_LABEL}: one fixed answer per family, whatever the question (the gold response that "
                 "scores best against the family's references), scored like a model over the rows scored: the "
                 "template floor. A metric that rates it near the models rewards form, not knowledge.")


def format_duration(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _number(value: float | None, decimals: int = 0) -> str:
    return "–" if value is None else f"{value:,.{decimals}f}"


def _cell_text(cell: dict | None, approx: bool | None = None) -> str:
    if cell is None:
        return "–"
    single_value = cell["n_train_seeds"] == 1 and cell["n_gen_seeds"] == 1  # a ± would claim a spread
    text = f"{cell['mean']:.2f}" if single_value else f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    return text + f" {APPROX_MARK}" if approx else text


def _difference_text(difference: dict | None) -> tuple[str, str, str]:
    """("Δ [CI]", "p", "p Holm") of a paired difference."""
    if difference is None:
        return "–", "–", "–"
    if difference["p_value"] is None:
        return f"n={difference['n_pairs']}, no test", "–", "–"
    mark = f" {APPROX_MARK}" if difference["approx"] else ""
    prompts = f" {PROMPT_LEVEL_MARK}" if difference.get("level") == "prompts" else ""
    if difference["ci_low"] is None:  # every difference equal: the sign test, no interval
        count = difference.get("n_prompts") or difference["n_pairs"]
        delta = f"{difference['mean_difference']:+.2f} (all {count} equal){prompts}{mark}"
        p = f"{format_p(difference['p_value'])} (sign)"
    else:
        delta = (f"{difference['mean_difference']:+.2f} [{difference['ci_low']:+.2f}, "
                 f"{difference['ci_high']:+.2f}]{prompts}{mark}")
        p = format_p(difference["p_value"])
    return delta, p, format_p(difference["p_holm"]) if difference["primary"] else "expl."


def _row_label(method: dict) -> str:
    return method["label"] + f" {EXCEEDS_MARK}" * bool(method.get("budget", {}).get("exceeds_sft"))


def _has(comparison: dict, set_name: str, metric: str) -> bool:
    return any(metric in m["results"].get(set_name, {}) for m in comparison["methods"])


def _main_columns(comparison: dict, metrics=MAIN_METRICS) -> list[tuple[str, str]]:
    """(set, metric): per metric in `metrics`, every set some method has it for."""
    return [(s, metric) for metric in metrics for s in comparison["sets"] if _has(comparison, s, metric)]


def reference_rows(comparison: dict, set_name: str | None = None) -> list[dict]:
    """The rows that are no model, as method-like dicts ({"label", "family", "data", "results",
    "families"}; cells with one exact value): the constant answer, the chance level, the majority
    answer. `set_name`: only that set's cells (None: every set)."""
    def exact(value: float) -> dict:
        return {"mean": value, "std": 0.0, "n_train_seeds": 1, "n_gen_seeds": 1, "spread": "exact", "per_run": {}}

    wanted = [set_name] if set_name else list(dict.fromkeys([*comparison["sets"], *comparison["chance"],
                                                            *comparison["majority_answer"]]))
    constant = {"label": CONSTANT_LABEL, "family": "reference", "data": "one fixed answer per family (the template "
                "floor)", "results": {}, "families": {}}
    chance = {"label": CHANCE_LABEL, "family": "reference", "data": "a uniform guess among the options each "
              "question names", "results": {}, "families": {}}
    majority = {"label": MAJORITY_LABEL, "family": "reference", "data": "the commonest gold label per family (a "
                "ceiling for constant labels, not chance)", "results": {}, "families": {}}
    for name in wanted:
        if name in comparison["constant_answer"]:
            constant["results"][name] = comparison["constant_answer"][name]["results"]
            constant["families"][name] = comparison["constant_answer"][name]["families"]
        if name in comparison["chance"]:
            level = comparison["chance"][name]
            chance["results"][name] = {"accuracy_strict": exact(level["pooled"]),
                                       "accuracy_flexible": exact(level["pooled"])}
            chance["families"][name] = {family: {"accuracy_strict": exact(value), "accuracy_flexible": exact(value)}
                                        for family, value in level["families"].items()}
        if name in comparison["majority_answer"]:
            found = comparison["majority_answer"][name]
            majority["results"][name] = {"accuracy_strict": exact(found["accuracy"])}
            majority["families"][name] = {family: {"accuracy_strict": exact(value["accuracy"])}
                                          for family, value in found["families"].items()}
    return [row for row in (constant, chance, majority) if row["results"]]


def main_table(comparison: dict) -> str:
    """Method × set: Rouge-L at temperature 1 and greedy, strict accuracy and mean per-token
    entropy where the summaries have them; ≈ by the paired test against SFT; the reference rows
    after the models that are no students; the last column says what each ± is over."""
    columns = _main_columns(comparison)
    header = ["Method", "Family", "Data"] + [f"{METRIC_LABELS[m]} {s}" for s, m in columns] + ["±"]
    rows = []
    for method in comparison["methods"]:
        if not method["results"]:
            cells = ["not evaluated"] * len(columns) + ["–"]
        else:
            cells = [_cell_text(method["results"].get(s, {}).get(m), _approx_vs_sft(comparison, method, s, m))
                     for s, m in columns]
            cells.append(_spread_column(method, columns))
        rows.append([_row_label(method), method["family"], method["data"]] + cells)
    references = [[row["label"], row["family"], row["data"]]
                  + [_cell_text(row["results"].get(s, {}).get(m)) for s, m in columns] + ["exact"]
                  for row in reference_rows(comparison)]
    if references:
        position = sum(1 for m in comparison["methods"] if m["family"] in REFERENCE_FAMILIES)
        rows[position:position] = [row for row in references if any(cell != "–" for cell in row[3:-1])]
    return markdown_table(header, rows)


def _approx_vs_sft(comparison: dict, method: dict, set_name: str, metric: str) -> bool | None:
    difference = find_difference(comparison, method["key"], BASELINE, set_name, metric)
    return None if difference is None else difference["approx"]


def _spread_column(method: dict, columns) -> str:
    """One description when every cell of the row shares it; else each with its sets."""
    by_description: dict[str, dict[str, None]] = {}  # description → its columns (Rouge-L ones by set name)
    for set_name, metric in columns:
        cell = method["results"].get(set_name, {}).get(metric)
        if cell:
            column = set_name if metric == "rougeL" else f"{METRIC_LABELS[metric]} {set_name}"
            by_description.setdefault(spread_description(cell), {})[column] = None
    if len(by_description) == 1:
        return next(iter(by_description))
    return "; ".join(f"{', '.join(names)}: {description}" for description, names in by_description.items())


def paired_table(comparison: dict) -> str:
    """Per declared comparison: primary or exploratory, then Δ [95% CI], p and p Holm per set and
    compared metric (whole sets), and the training seeds paired."""
    columns = _main_columns(comparison, COMPARED_METRICS)
    header = ["Method", "vs", "Comparison"]
    for set_name, metric in columns:
        header += [f"Δ {METRIC_LABELS[metric]} {set_name} [95% CI]", "p", "p Holm"]
    labels = {method["key"]: method["label"] for method in comparison["methods"]}
    pairs = {(d["method"], d["baseline"]): d["primary"]
             for d in comparison["paired_differences"] if d["family"] is None}
    rows = []
    for (method, baseline), primary in pairs.items():
        found = [find_difference(comparison, method, baseline, set_name, metric) for set_name, metric in columns]
        cells = [labels[method], labels[baseline], "primary" if primary else "exploratory"]
        for difference in found:
            cells += _difference_text(difference)
        rows.append(cells + [str(max(d["n_pairs"] for d in found if d))])
    return markdown_table(header + ["n seeds"], rows)


def primary_family_line(comparison: dict) -> str | None:
    """The declared family's size per set and metric, and the adjustment."""
    if not comparison["primary_families"]:
        return None
    sizes = "; ".join(f"{family['set']} {METRIC_LABELS[family['metric']]}: {family['size']}"
                      for family in comparison["primary_families"])
    return (f"{comparison['primary_rule']} Holm family sizes (comparisons with a test): {sizes}; "
            f"a primary difference survives Holm when its adjusted p < {comparison['significance']:g}.")


def family_paired_table(comparison: dict) -> str | None:
    """The paired differences of the families (exploratory), one row per pair × set × family × metric."""
    labels = {method["key"]: method["label"] for method in comparison["methods"]}
    rows = [[labels[d["method"]], labels[d["baseline"]], d["set"], d["family"], METRIC_LABELS[d["metric"]],
             *_difference_text(d)[:2], str(d["n_pairs"])]
            for d in comparison["paired_differences"] if d["family"] is not None]
    if not rows:
        return None
    return markdown_table(["Method", "vs", "Set", "Family", "Metric", "Δ [95% CI]", "p (raw, exploratory)",
                           "n seeds"], rows)


def family_table(comparison: dict, set_name: str, metric: str) -> str | None:
    """Method × family of one set for one metric, then the reference rows that have it (constant
    answer, chance, majority answer); the teachers' accuracy in bold (they must reach
    `TEACHER_ACCURACY_TARGET`)."""
    families = [family for family in comparison["family_rows"].get(set_name, {})
                if any(metric in m["families"].get(set_name, {}).get(family, {}) for m in comparison["methods"])]
    if not families:
        return None
    rows = []
    for method in comparison["methods"] + reference_rows(comparison, set_name):
        cells = [method["families"].get(set_name, {}).get(family, {}).get(metric) for family in families]
        if any(cells):
            texts = [_cell_text(cell) for cell in cells]
            if method["family"] == "teacher" and metric.startswith("accuracy"):
                texts = [f"**{text}**" if cell else text for text, cell in zip(texts, cells)]
            rows.append([_row_label(method)] + texts)
    counts = comparison["family_rows"][set_name]
    count_key = "multi_answer_rows" if metric in MULTI_ANSWER_METRICS else \
        "answer_rows" if metric.startswith("accuracy") else "fact_rows" if metric.startswith("fact_") else "rows"
    header = ["Method"] + [f"{family} ({counts[family].get(count_key, '?')} rows)" for family in families]
    return markdown_table(header, rows)


def teacher_accuracy_line(comparison: dict, set_name: str) -> str | None:
    """The teachers' greedy strict accuracy per family against the target."""
    parts = []
    for method in comparison["methods"]:
        if method["family"] != "teacher":
            continue
        for family, cells in method["families"].get(set_name, {}).items():
            if "accuracy_strict" in cells:
                value = cells["accuracy_strict"]["mean"]
                verdict = "meets" if value >= TEACHER_ACCURACY_TARGET else "BELOW"
                parts.append(f"{method['label']} {family} {value:.2f} ({verdict})")
    if not parts:
        return None
    return (f"**Teacher accuracy (strict) per family, target ≥ {TEACHER_ACCURACY_TARGET:.0f}%:** "
            + "; ".join(parts) + ".")


def _tokens_text(value: float | None, source: str, sources: dict[str, str]) -> str:
    return _number(value) if source in sources.values() else ""


def budget_table(comparison: dict) -> str:
    header = ["Method", "Init", "Runs", "Steps", "Steps incl. init"] + \
        [f"{source.capitalize()} tokens" for source in SOURCES] + ["Train time", "Compute (FLOPs)",
                                                                   "Compute incl. init"]
    rows = []
    for method in comparison["methods"]:
        budget = method["budget"]
        unfinished = budget["unfinished_runs"]
        runs = str(budget["runs"]) + (f" (+{unfinished} unfinished)" if unfinished else "")
        if budget["runs"]:
            by_source = budget["tokens_by_source"]
            cells = [runs, _number(budget["steps"]), _number(budget["steps_with_init"])]
            cells += [_tokens_text(by_source.get(source), source, method["sources"]) for source in SOURCES]
            cells.append(format_duration(budget["train_seconds"]) if budget["train_seconds"] is not None else "–")
            compute = method["compute"]
            shared = " (shared)" if compute["shared"] else ""
            cells += [format_flops(compute["own"]) + shared * (compute["own"] is not None),
                      format_flops(compute["with_init"]) + shared * (compute["with_init"] is not None)]
        else:
            cells = [runs if unfinished else "no training run"] + ["–"] * (5 + len(SOURCES))
        rows.append([_row_label(method), method["init"]] + cells)
    return markdown_table(header, rows)


def format_flops(value: float | None) -> str:
    """FLOPs in scientific notation, 3 significant digits: 3.21e11."""
    if value is None:
        return "–"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa}e{int(exponent)}"


COMPUTE_NOTE = ("Compute = training FLOPs, estimated from model shapes and token counts: a forward pass costs "
                "2·N FLOPs per token, a training step (forward + backward) 6·N, N = the parameters a token meets "
                "in matrix multiplications (attention and MLP weights of every layer + the output projection; "
                "embeddings, norms, biases and attention over the context left out). Per arm: student training "
                "6·S·(tokens it trains on: every input token of token-level runs, rollout tokens × PPO epochs of "
                "on-policy runs, + pretraining tokens); student sampling 2·S·rollout tokens; teacher scoring "
                "2·T·(tokens the teacher reads live: KD's training tokens unless a teacher cache holds them, "
                "on-policy rollouts, the corpus term's tokens when it has a KD part); teacher data 2·T·(one epoch "
                "of the teacher-written or cached tokens: the pass that wrote them). S, T = the student's and the "
                "teacher's N. Rollout tokens count responses only (final.json does not record the rollouts' "
                "prompt tokens), so on-policy figures are lower bounds. The teachers' own fine-tuning is shown on "
                "their rows (shared) and is in no student's total; incl. init adds the arm a row continues. "
                "– = a shape or count the estimate needs is not recorded (the full report says which).")


def compute_models_line(comparison: dict, with_missing: bool = True) -> str | None:
    """Which model folders gave N (grouped by shape), and (`with_missing`) which shapes did not read and why."""
    by_shape: dict[tuple, list[str]] = {}
    labels = {method["key"]: method["label"] for method in comparison["methods"]}
    for key, shape in comparison["compute"]["models"].items():
        text = (f"{shape['model_type']} {shape['layers']}×{shape['width']}, vocabulary {shape['vocab_size']:,}: "
                f"N = {shape['matmul_parameters']:,}")
        by_shape.setdefault((text,), []).append(f"{labels.get(key, key)} (`{shape['path']}`)")
    parts = [f"{text}: {', '.join(users)}" for (text,), users in by_shape.items()]
    missing = [f"{labels.get(key, key)}: {reason}" for key, reason in comparison["compute"]["missing"].items()
               if with_missing]
    if not parts and not missing:
        return None
    used = "Shapes used (config.json of the evaluated checkpoint, or of the run's init): " + "; ".join(parts) + "."
    return (used if parts else "") + (" Shapes not read: " + "; ".join(missing) + "." if missing else "")


def compute_table(comparison: dict) -> str | None:
    """Each trained row's FLOPs by component, its own total and incl. init; why a figure is missing."""
    rows = []
    for method in comparison["methods"]:
        compute = method.get("compute") or {}
        if not method["budget"]["runs"]:
            continue
        cells = [format_flops(compute.get(component)) for component in COMPONENTS]
        cells += [format_flops(compute.get("own")), format_flops(compute.get("with_init")),
                  "shared (the teacher's own training)" if compute.get("shared") else compute.get("missing") or ""]
        rows.append([_row_label(method)] + cells)
    if not rows:
        return None
    return markdown_table(["Method", "Student training", "Student sampling", "Teacher scoring", "Teacher data",
                           "Own total", "Incl. init", "Note"], rows)


BUDGET_NOTE = ("Mean over each method's finished training runs (runs/<method>/<run>/final.json). Tokens by "
               "source: gold = written by people, teacher-written = labels or rationales a teacher generated, "
               "rollout = response tokens the student sampled (on-policy methods, GKD, DistiLLM; each counted "
               "once, when sampled), pretraining = the language-modelling corpus; empty = the method has no "
               "such source, – = not counted in final.json. Units differ by source: gold and teacher-written "
               "count each sequence's prompt and response tokens (what the model reads), rollout only the "
               "sampled response tokens, pretraining the corpus tokens. "
               f"Steps incl. init adds the training of the student a row starts from. {EXCEEDS_MARK} = a student "
               "with more steps or tokens (incl. init) than SFT: compare it with its control arm. "
               + COMPUTE_NOTE)


def teacher_data_table(comparison: dict) -> str | None:
    if not comparison["teacher_data"]:
        return None
    rows = []
    for path, data in comparison["teacher_data"].items():
        rate = "–" if data["failure_rate"] is None else f"{data['failure_rate']:.2f}%"
        rows.append([f"`{path}`", _number(data["rows_written"]), _number(data["rows_dropped"]), rate,
                     _number(data["consistency_rate"], 2), _number(data["teacher_label_accuracy"], 2)])
    return markdown_table(["File", "Rows written", "Dropped", "Failure rate", "Consistency (%)",
                           "Teacher-label accuracy (%)"], rows)


TEACHER_DATA_NOTE = ("Consistency = percent of teacher rationales whose final answer equals the teacher's label; "
                     "teacher-label accuracy = percent of teacher labels equal to the gold answer; "
                     "– = not in the stats file.")


def adaptive_outputs_table(comparison: dict) -> str | None:
    """DistiLLM's adaptive student outputs per run: did p ever rise, and how close the loss came."""
    traced = comparison.get("adaptive_outputs") or {}
    if not traced:
        return None
    labels = {m["key"]: m["label"] for m in comparison["methods"]}
    rows = []
    for key, method in traced.items():
        for run, trace in method["runs"].items():
            rows.append([labels.get(key, key), run, " → ".join(f"{loss:.3f}" for loss in trace["valid_loss"]),
                         f"{trace['highest_above_first']:+.3f}", _number(method["loss_eps"], 2),
                         f"{trace['probability'][-1]:g}", _number(trace["replay_buffer"][-1]),
                         _number(trace["rollout_tokens"]), _number(trace["replayed_tokens"])])
    return markdown_table(["Method", "Run", "Validation loss at each validation", "Highest − first", "loss_eps",
                           "p at the end", "Replay buffer at the end", "Sampled tokens", "Replayed tokens"], rows)


ADAPTIVE_OUTPUTS_NOTE = (
    "DistiLLM's rule (minillm/train/response_source.py, as its finetune.py): the first validation's loss is the "
    "reference; a later validation whose loss reaches the reference + loss_eps raises p, the probability of a step "
    "on the student's own outputs (fresh, or replayed from the buffer), by 0.1 and becomes the new reference. "
    "Highest − first ≥ loss_eps is needed before any student output is trained on; sampled and replayed tokens "
    "are final.json's counts of the response tokens trained on from each source.")


def methods_table(comparison: dict) -> str:
    return markdown_table(["Method", "Key", "Family", "Init", "Data", "Training set", "Optimises"], [
        [m["label"], f"`{m['key']}`", m["family"], m["init"], m["data"], m["training_set"] or "–", m["objective"]]
        for m in comparison["methods"]])


def stages_table(comparison: dict) -> str:
    return markdown_table(["Stage", "Finished", "Time"], [
        [stage["name"] or "?", stage["finished_at"] or "–",
         format_duration(stage["seconds"]) if stage["seconds"] is not None else "–"]
        for stage in comparison["stages"]])


def reference_note(comparison: dict) -> str | None:
    """What each reference row is, and why one is missing."""
    notes = [note for note, present in ((CONSTANT_NOTE, comparison["constant_answer"]),
                                        (CHANCE_NOTE, comparison["chance"]),
                                        (MAJORITY_NOTE, comparison["majority_answer"])) if present]
    missing = comparison["reference_missing"]
    notes += [f"No {label} row for {set_name}: {reason}." for label, reasons in (
        (CONSTANT_LABEL, missing["constant_answer"]), (CHANCE_LABEL, missing["chance"]),
        (MAJORITY_LABEL, comparison["majority_answer_missing"])) for set_name, reason in reasons.items()]
    return " ".join(notes) or None


def _decoding_note(comparison: dict) -> str:
    parts = ["Rouge-L from temperature-1 sampling, MiniLLM's protocol (± as the last column says)."]
    if any(_has(comparison, s, "rougeL_greedy") for s in comparison["sets"]):
        parts.append("Rouge-L greedy from one greedy decoding: a gain at temperature 1 that greedy decoding does not "
                     "show is sharpness (lower entropy), not better answers.")
    if any(_has(comparison, s, "entropy") for s in comparison["sets"]):
        parts.append("Entropy = the mean per-token entropy (nats) of the model's own distribution on its "
                     "temperature-1 samples.")
    if comparison["accuracy_sets"]:
        decodings = " and ".join(comparison["accuracy_decoding"]) or "unknown"
        parts.append(f"Accuracy strict = the label after the answer marker only (no marker = wrong), from {decodings} "
                     "decoding; flexible accuracy is in the full report.")
    return " ".join(parts)


def scored_line(comparison: dict) -> str:
    """How many rows of each eval set were scored, and over which generation seeds."""
    sets = "; ".join(f"{set_name} {' or '.join(map(str, rows))}" + " (runs differ)" * (len(rows) > 1)
                     for set_name, rows in comparison["rows_scored"].items())
    cap = f" (the first MAX_EVAL_ROWS={comparison['max_eval_rows']} of each set)" if comparison["max_eval_rows"] else ""
    seeds = " / ".join(" ".join(map(str, seeds)) for seeds in comparison["generation_seeds"])
    several = " (runs differ)" if len(comparison["generation_seeds"]) > 1 else ""
    return f"Rows scored: {sets}{cap}. Generation seeds: {seeds}{several}."


def training_data_line(comparison: dict) -> str | None:
    """Which data each trained row learned from (e.g. the DSS rows on GSM8K, the others on dolly)."""
    by_source: dict[str, list[str]] = {}
    for method in comparison["methods"]:
        if method["training_set"]:
            by_source.setdefault(method["training_set"], []).append(method["label"])
    if not by_source:
        return None
    return "Training data: " + "; ".join(f"{', '.join(labels)}: {source}" for source, labels in by_source.items()) + "."


def teacher_cache_line(comparison: dict) -> str | None:
    k = comparison.get("teacher_cache_top_k")
    if not k:
        return None
    return (f"KD and DSS-KD read their teacher from a top-{k} + tail cache (TEACHER_CACHE_TOP_K, "
            "tools/cache_teacher.py) instead of running it: an approximation, exact when k is the vocabulary size.")


def not_run_line(comparison: dict) -> str | None:
    if not comparison["methods_not_run"]:
        return None
    return ("Not run (the driver's METHODS left them out): "
            + ", ".join(f"`{key}`" for key in comparison["methods_not_run"]) + ".")


def results_section(comparison: dict, plot_link: str | None = None, report_link: str | None = None) -> str:
    """The main table, the paired differences and the budget table with their notes (comparison.md and the README)."""
    blocks = [scored_line(comparison), training_data_line(comparison), teacher_cache_line(comparison),
              not_run_line(comparison), main_table(comparison),
              SPREAD_RULE, _decoding_note(comparison), reference_note(comparison)]
    if comparison["paired_differences"]:
        blocks += [paired_table(comparison), primary_family_line(comparison), STATISTICS_NOTE]
    else:
        blocks.append("No paired differences: no SFT baseline or no student shares its training seeds.")
    blocks += [budget_table(comparison), BUDGET_NOTE, compute_models_line(comparison, with_missing=False)]
    if comparison["stage_seconds_total"] is not None:
        blocks.append(f"Total time of the driver's {len(comparison['stages'])} stages: "
                      f"{format_duration(comparison['stage_seconds_total'])}.")
    if plot_link:
        blocks.append(f"![Rouge-L per eval set]({plot_link})")
    if report_link:
        blocks.append(f"Full report (per-family tables, plots, per-seed numbers): [{report_link}]({report_link})")
    return "\n\n".join(block for block in blocks if block) + "\n"


FAMILY_SECTIONS = (("rougeL", "Rouge-L per family (temperature 1)"),
                   ("rougeL_greedy", "Rouge-L per family (greedy)"),
                   ("entropy", "Mean per-token entropy per family (nats, temperature-1 samples)"),
                   ("accuracy_strict", "Accuracy strict per reasoning family"),
                   ("accuracy_flexible", "Accuracy flexible per reasoning family (marker, else the last number)"),
                   ("rougeL_label", "Rouge-L against the label references per family (step-by-step label task)"),
                   ("rougeL_label_greedy", "Rouge-L greedy against the label references per family"),
                   ("exact_match_label_greedy", "Exact match greedy against the label references per family"),
                   ("fact_f1", "Fact F1 per family: stated facts against the world (temperature 1)"),
                   ("fact_f1_greedy", "Fact F1 per family (greedy)"),
                   ("fact_precision", "Fact precision per family (temperature 1)"),
                   ("fact_recall", "Fact recall per family (temperature 1)"),
                   ("validity", "Validity: percent of answers that are valid (multi-answer families, temperature 1)"),
                   ("validity_greedy", "Validity (greedy)"),
                   ("distinct_valid_per_prompt", "Distinct valid answers per prompt over generation seeds"),
                   ("distinct_per_prompt", "Distinct answers per prompt over generation seeds (multi-answer families)"),
                   ("coverage", "Coverage: percent of a prompt's valid answers some generation seed produced"))
MULTI_ANSWER_METRICS = ("distinct_per_prompt", "coverage", "validity", "validity_greedy", "distinct_valid_per_prompt")
LABEL_METRICS = ("rougeL_label", "rougeL_label_greedy", "exact_match_label", "exact_match_label_greedy")


def label_task_table(comparison: dict) -> str | None:
    """Whole sets scored against the step-by-step label references (a DSS student's label task),
    beside the shared references' Rouge-L, for the rows that have them."""
    columns = _main_columns(comparison, LABEL_METRICS)
    if not columns:
        return None
    columns = _main_columns(comparison, ("rougeL", "rougeL_greedy")) + columns
    rows = [[_row_label(method)] + [_cell_text(method["results"].get(s, {}).get(m)) for s, m in columns]
            for method in comparison["methods"] + reference_rows(comparison)
            if any(method["results"].get(s, {}).get(m) for s, m in columns[-len(LABEL_METRICS):])]
    return markdown_table(["Method"] + [f"{METRIC_LABELS[m]} {s}" for s, m in columns], rows)


def family_sections(comparison: dict) -> list[str]:
    blocks = []
    for set_name in comparison["family_rows"]:
        blocks.append(f"### {set_name}")
        blocks.append(teacher_accuracy_line(comparison, set_name))
        for metric, title in FAMILY_SECTIONS:
            table = family_table(comparison, set_name, metric)
            if table:
                blocks += [f"#### {title}", table]
    return [block for block in blocks if block]


def comparison_markdown(comparison: dict, plots: dict[str, str]) -> str:
    """`plots`: plot name → path relative to the markdown file."""
    blocks = [f"# Distillation comparison: {comparison['results_dir']}", "## Results",
              results_section(comparison).rstrip("\n")]
    label_task = label_task_table(comparison)
    if label_task:
        blocks += ["## Scored against the label references (the step-by-step label task)", label_task,
                   "Rows whose eval set carries `label_output` are also scored against it, so a step-by-step "
                   "student's label answers are judged as its task asks, not only against the shared references."]
    if comparison["family_rows"]:
        blocks += ["## Per family", *family_sections(comparison)]
    family_differences = family_paired_table(comparison)
    if family_differences:
        blocks += ["## Paired differences per family (exploratory)", family_differences,
                   "Exploratory: raw p-values, no multiplicity adjustment; with one training seed a family row "
                   "gets no test. " + STATISTICS_NOTE]
    compute = compute_table(comparison)
    if compute:
        blocks += ["## Compute", compute, COMPUTE_NOTE, compute_models_line(comparison)]
    teacher_data = teacher_data_table(comparison)
    if teacher_data:
        blocks += ["## Teacher-written data", teacher_data, TEACHER_DATA_NOTE]
    adaptive = adaptive_outputs_table(comparison)
    if adaptive:
        blocks += ["## DistiLLM's adaptive student outputs", adaptive, ADAPTIVE_OUTPUTS_NOTE]
    blocks += ["## Methods", methods_table(comparison)]
    if comparison["stages"]:
        blocks += ["## Stages (in run order)", stages_table(comparison)]
    if plots:
        blocks += ["## Plots"] + [f"![{name}]({path})" for name, path in plots.items()]
    return "\n\n".join(blocks) + "\n"


CSV_COLUMNS = ("row_kind", "method", "label", "family", "set", "task_family", "metric", "mean", "std", "spread",
               "n_train_seeds", "n_gen_seeds", "run", "run_mean", "gen_seeds", "per_gen_seed",
               "baseline", "mean_difference", "ci_low", "ci_high", "p_value", "n_pairs", "approx",
               "primary", "p_holm", "survives_holm", "level", "n_prompts", "test")


def _cell_scopes(method: dict):
    """(set, task family or "", metric, cell) of one method: whole sets, then families."""
    for set_name, cells in method["results"].items():
        for metric, cell in cells.items():
            yield set_name, "", metric, cell
    for set_name, families in method["families"].items():
        for family, cells in families.items():
            for metric, cell in cells.items():
                yield set_name, family, metric, cell


def comparison_csv(comparison: dict) -> str:
    """Long format. row_kind "run": one row per method × set × task family × metric × run, the
    cell's statistics beside the run's mean and its per-generation-seed values (space-separated).
    row_kind "paired": one row per paired difference."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", restval="")
    writer.writeheader()
    labels = {}
    for method in comparison["methods"]:
        labels[method["key"]] = method["label"]
        for set_name, task_family, metric, cell in _cell_scopes(method):
            for run, values in cell["per_run"].items():
                writer.writerow({
                    "row_kind": "run", "method": method["key"], "label": method["label"], "family": method["family"],
                    "set": set_name, "task_family": task_family, "metric": metric, "mean": cell["mean"],
                    "std": cell["std"], "spread": cell["spread"], "n_train_seeds": cell["n_train_seeds"],
                    "n_gen_seeds": cell["n_gen_seeds"], "run": run, "run_mean": values["mean"],
                    "gen_seeds": " ".join(map(str, values["gen_seeds"])),
                    "per_gen_seed": " ".join(map(str, values["per_gen_seed"]))})
    for difference in comparison["paired_differences"]:
        writer.writerow({"row_kind": "paired", "method": difference["method"], "label": labels[difference["method"]],
                         "set": difference["set"], "task_family": difference["family"] or "",
                         "metric": difference["metric"], "run": " ".join(difference["seeds"]),
                         **{key: difference.get(key) for key in ("baseline", "mean_difference", "ci_low", "ci_high",
                                                                 "p_value", "n_pairs", "approx", "primary", "p_holm",
                                                                 "survives_holm", "level", "n_prompts", "test")}})
    return buffer.getvalue()


def replace_readme_section(readme: str, tag: str, section: str, readme_name: str = "README") -> str:
    """Swap the text between `<!-- results:TAG:start -->` and `<!-- results:TAG:end -->`."""
    return replace_marked_section(readme, f"results:{tag}", section, readme_name, "the report")


def replace_marked_section(text: str, marker: str, section: str, name: str = "README",
                           what: str = "the generated text") -> str:
    """Swap the text between `<!-- MARKER:start -->` and `<!-- MARKER:end -->`."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ReportError(f"{name} needs exactly one '{start}' followed by one '{end}' ({what} goes between them)")
    before, rest = text.split(start)
    _, after = rest.split(end)
    return f"{before}{start}\n{section}{end}{after}"


def relative_link(target: Path, from_dir: Path) -> str:
    return Path(os.path.relpath(target.resolve(), from_dir.resolve())).as_posix()
