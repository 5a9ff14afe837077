"""tools/report.py on a fabricated results folder: known numbers in, known cells out."""
from __future__ import annotations

import csv
import dataclasses
import importlib.machinery
import importlib.util
import json
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from minillm.experiments.compute import ShapeError, arm_flops, matmul_parameters
from minillm.experiments.methods import METHODS, method_order, run_order
from minillm.experiments.plots import method_colors, metric_bars, quality_vs_compute
from minillm.experiments.comparison import (
    build_comparison,
    declared_comparisons,
    majority_answer_accuracy,
    prompt_rouge_l,
    stages_in_run_order,
    stream_tokens,
)
from minillm.experiments.reading import load_results
from minillm.experiments.rendering import main_table, results_section
from minillm.metrics import answer_accuracy, compute_metrics

REPO = Path(__file__).resolve().parents[1]
SEEDS = [10, 20, 30]
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


ABSENT_REFERENCES = "minillm.eval.absent_references_for_tests"


def load_tool(references: str = ABSENT_REFERENCES):
    """tools/report.py as a module; its reference rows from the module `references`: by default one
    that does not exist, so the fabricated folders keep their rows whether or not
    minillm/eval/references.py is in the checkout (and no test imports torch for them)."""
    spec = importlib.util.spec_from_file_location("report_tool", REPO / "tools/report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.REFERENCES_MODULE = references
    return module


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def summary_entry(metrics: dict, set_name: str = "set") -> dict:
    """A summary.json entry: metric → per-generation-seed values (list) or one value (float);
    "families" and the row counts pass through."""
    entry = {"rows": 10, "path": f"/data/{set_name}/valid.jsonl"}
    for metric, values in metrics.items():
        if metric == "families":
            entry["families"] = {family: summary_entry(scoped) for family, scoped in values.items()}
        elif isinstance(values, list):
            entry |= {f"{metric}_mean": -1.0, f"{metric}_std": -1.0,  # the report recomputes from per-seed values
                      f"{metric}_per_seed": values}
        else:
            entry[metric] = values
    return entry


def write_summary(root: Path, method: str, run: str, sets: dict[str, dict], seeds: list[int] = SEEDS) -> None:
    """evaluate.py's summary.json; `sets`: set → `summary_entry` metrics."""
    write_json(root / "eval" / method / run / "summary.json",
               {"model": method, "model_path": f"/ckpt/{method}", "seeds": seeds, "prompt_prefix": "",
                "sampling": {"temperature": 1.0},
                "sets": {set_name: summary_entry(metrics, set_name) for set_name, metrics in sets.items()}})


def write_log(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


TOKEN_LOG = [{"step": 10, "loss": 3.0, "ce": 3.0, "lr": 1e-3, "tokens": 100, "elapsed_s": 1.0},
             {"event": "eval", "step": 10, "valid_loss": 2.5, "rougeL": 30.0, "exact_match": 0.0},
             {"step": 20, "loss": 2.0, "ce": 2.0, "lr": 1e-3, "tokens": 200, "elapsed_s": 2.0},
             {"event": "eval", "step": 20, "valid_loss": 2.0, "rougeL": 40.0, "exact_match": 1.0}]
MINILLM_LOG = [{"event": "eval", "step": 0, "rougeL": 50.0, "rev_kl": 6.0, "reward": -0.6},
               {"step": 4, "reward": -0.5, "rev_kl": 5.0, "pg_loss": 0.1, "reg_loss": 0.5, "response_len": 12.0},
               {"step": 8, "reward": -0.4, "rev_kl": 4.0, "pg_loss": 0.1, "reg_loss": 0.4, "response_len": 12.0},
               {"event": "eval", "step": 8, "rougeL": 52.0, "rev_kl": 4.5, "reward": -0.45}]


@pytest.fixture
def results(tmp_path) -> Path:
    """Known numbers: see the expected cells in the tests below."""
    root = tmp_path / "results" / "tiny"
    write_summary(root, "teacher", "init", {"tiny": {"rougeL": [60.0, 62.0, 64.0], "exact_match": [10.0, 10.0, 10.0]}})
    write_summary(root, "untrained", "init", {"tiny": {"rougeL": [1.0, 2.0, 3.0], "exact_match": [0.0, 0.0, 0.0]}})
    # SFT: two training seeds; run means 52 and 56 (Rouge-L), 30 and 50 (accuracy on "arith").
    write_summary(root, "sft", "seed1", {"tiny": {"rougeL": [50.0, 52.0, 54.0]},
                                         "arith": {"rougeL": [20.0, 20.0, 20.0], "accuracy": [20.0, 30.0, 40.0]}})
    write_summary(root, "sft", "seed2", {"tiny": {"rougeL": [54.0, 56.0, 58.0]},
                                         "arith": {"rougeL": [22.0, 22.0, 22.0], "accuracy": [40.0, 50.0, 60.0]}})
    # KD: run means 55 and 57 -> 56 ± 1.41, |56 − 54| = 2 ≤ 2.83 (SFT's std): within noise.
    write_summary(root, "kd-forward_kl", "seed1", {"tiny": {"rougeL": [55.0, 55.0, 55.0]}})
    write_summary(root, "kd-forward_kl", "seed2", {"tiny": {"rougeL": [57.0, 57.0, 57.0]}})
    # MiniLLM: one training seed -> the std over its generation seeds; 71 is far from 54.
    write_summary(root, "minillm", "seed1", {"tiny": {"rougeL": [70.0, 71.0, 72.0]}})
    write_summary(root, "my-new-method", "seed1", {"tiny": {"rougeL": [40.0, 40.0, 40.0]}})

    write_json(root / "runs/sft/seed1/final.json", {"steps": 100, "tokens": 1000, "supervised_tokens": 400,
                                                    "train_seconds": 10.0, "evaluations": [], "best": {}})
    write_json(root / "runs/sft/seed2/final.json", {"steps": 100, "tokens": 1200, "supervised_tokens": 500,
                                                    "train_seconds": 14.0, "evaluations": [], "best": {}})
    write_log(root / "runs/sft/seed1/log.jsonl", TOKEN_LOG)
    write_log(root / "runs/sft/seed2/log.jsonl", TOKEN_LOG)
    write_json(root / "runs/kd-forward_kl/seed1/final.json", {"steps": 100, "tokens": 1000, "train_seconds": 20.0})
    write_log(root / "runs/kd-forward_kl/seed2/log.jsonl", TOKEN_LOG[:2])  # still training: no final.json
    write_json(root / "runs/minillm/seed1/final.json", {"steps": 8, "rollout_tokens": 500, "train_seconds": 90.0})
    write_log(root / "runs/minillm/seed1/log.jsonl", MINILLM_LOG)
    write_json(root / "runs/seqkd/seed1/final.json", {"steps": 50, "tokens": 700, "train_seconds": 5.0})  # no eval
    write_json(root / "stages/01-sft.json", {"name": "sft", "seconds": 100.0, "finished_at": "t1", "command": "x"})
    write_json(root / "stages/02-eval.json", {"name": "eval", "seconds": 3600.0, "finished_at": "t2", "command": "y"})
    return root


def table_rows(markdown: str) -> dict[str, list[str]]:
    """The first table whose rows start with a method label: label → cells."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
    return rows


def test_report_cells_statistics_and_noise_marks(results, capsys):
    assert load_tool().main([str(results)]) == 0
    markdown = (results / "comparison.md").read_text()
    # An old-format folder (sampled "accuracy", no greedy keys, no families) still renders: no accuracy columns.
    assert "| Method | Family | Data | Rouge-L tiny | Rouge-L arith | ± |" in markdown
    rows = table_rows(markdown)
    # One training seed: mean ± std over generation seeds, said so.
    one_training_seed = "std over 3 generation seeds (1 training seed)"
    assert rows["Teacher"] == ["teacher", "gold labels", "62.00 ± 2.00", "–", one_training_seed]
    assert rows["Untrained student"][2] == "2.00 ± 1.00"
    # Two training seeds: mean ± std of the per-run means (52, 56 -> 54 ± 2.83).
    assert rows["SFT"] == ["baseline", "gold labels", "54.00 ± 2.83", "21.00 ± 1.41", "std over 2 training seeds"]
    # KD − SFT per seed: 3, 1 -> the 95% CI 2 ± 12.71 contains 0: ≈.
    assert rows["KD (forward KL)"][2:] == ["56.00 ± 1.41 ≈", "–", "std over 2 training seeds"]
    # One training seed: no test, so no ≈; 108 steps incl. its SFT init > SFT's 100: ▲.
    assert rows["MiniLLM ▲"][2:] == ["71.00 ± 1.00", "–", one_training_seed]
    assert rows["my-new-method"][:3] == ["unknown", "unknown", "40.00 ± 0.00"]
    assert rows["SeqKD"] == ["black-box", "labels written by the SFT teacher", "not evaluated", "not evaluated", "–"]
    labels = [line.split("|")[1].strip() for line in markdown.split("## Results")[1].splitlines()
              if line.startswith("| ") and not line.startswith("| Method")][:8]
    assert labels == ["Teacher", "Untrained student", "SFT", "KD (forward KL)", "SeqKD", "MiniLLM ▲",
                      "my-new-method", "KD (forward KL)"]  # METHODS order, unknown keys last; then the paired table
    paired = table_rows(markdown.split("| Method | vs |")[1])
    # Columns: vs, primary or exploratory, then Δ [CI], p, p Holm per set (tiny, arith), n seeds.
    assert paired["KD (forward KL)"] == ["SFT", "primary", "+2.00 [-10.71, +14.71] ≈", "0.295", "0.295",
                                         "–", "–", "–", "2"]
    # One training seed and no answers.jsonl to rescore: no test (the JSON note says why).
    assert paired["MiniLLM"] == ["SFT", "primary", "n=1, no test", "–", "–", "–", "–", "–", "1"]
    assert paired["my-new-method"][1] == "exploratory"  # not declared in the registry
    assert "≈ = no evidence of a difference: p ≥ 0.05, with p Holm-adjusted" in markdown
    assert "Holm family sizes (comparisons with a test): tiny Rouge-L: 1;" in markdown
    assert "± = sample std (ddof=1) over training seeds" in markdown
    assert "No Majority answer row for arith: eval set file /data/arith/valid.jsonl" in markdown
    assert capsys.readouterr().out.rstrip().endswith("Total time of the driver's 2 stages: 1h 01m.")


def test_budget_table_and_missing_pieces(results):
    assert load_tool().main([str(results), "--no-plots"]) == 0
    budget = table_rows((results / "comparison.md").read_text().split("| Method | Init |")[1])
    # Columns: init, runs, steps, steps incl. init, gold / teacher-written / rollout / pretraining tokens, time.
    # ... then compute (FLOPs) own and incl. init: "–", the fabricated model paths hold no config.json.
    assert budget["SFT"] == ["random init", "2", "100", "100", "1,100", "", "", "", "12.0 s", "–", "–"]
    assert budget["KD (forward KL)"][1] == "1 (+1 unfinished)"
    assert budget["SeqKD"] == ["random init", "1", "50", "50", "", "700", "", "", "5.0 s", "–", "–"]
    # An old MiniLLM final.json has no ptx_tokens: "–", not a crash.
    assert budget["MiniLLM ▲"] == ["the SFT student", "1", "8", "108", "", "", "500", "–", "1m 30s", "–", "–"]
    assert budget["Untrained student"][1:] == ["no training run"] + ["–"] * 9
    assert budget["Teacher"][1] == "no training run"
    assert not (results / "plots").exists()


def test_json_and_csv_keep_every_number(results):
    assert load_tool().main([str(results), "--no-plots"]) == 0
    comparison = json.loads((results / "comparison.json").read_text())
    methods = {m["key"]: m for m in comparison["methods"]}
    sft = methods["sft"]["results"]["tiny"]["rougeL"]
    assert (sft["mean"], sft["std"], sft["n_train_seeds"], sft["n_gen_seeds"]) == (54.0, 2.8284, 2, 3)
    assert sft["per_run"]["seed2"] == {"gen_seeds": SEEDS, "per_gen_seed": [54.0, 56.0, 58.0], "mean": 56.0}
    differences = {(d["method"], d["set"], d["metric"]): d for d in comparison["paired_differences"]}
    kd = differences["kd-forward_kl", "tiny", "rougeL"]
    # Hand computation: differences 3, 1; sd √2, se 1, t = 2 with 1 dof (Cauchy): t_0.975 = 12.7062,
    # p = 1 − 2·atan(2)/π = 0.2952.
    assert (kd["mean_difference"], kd["ci_low"], kd["ci_high"], kd["n_pairs"], kd["approx"]) == (
        2.0, -10.7062, 14.7062, 2, True)
    assert kd["p_value"] == pytest.approx(1 - 2 * math.atan(2) / math.pi, abs=1e-9)  # exact, not rounded
    assert (kd["primary"], kd["p_holm"], kd["holm_family_size"], kd["survives_holm"]) == (True, kd["p_value"], 1, False)
    assert kd["baseline"] == "sft" and kd["seeds"] == ["seed1", "seed2"]
    minillm = differences["minillm", "tiny", "rougeL"]
    assert (minillm["n_pairs"], minillm["ci_low"], minillm["approx"]) == (1, None, None)
    assert minillm["note"] == ("n=1, no test (no prompt-level test: eval/minillm/seed1/tiny/10/answers.jsonl "
                               "is absent)")
    assert methods["minillm"]["results"]["tiny"]["rougeL"]["spread"] == "generation seeds"
    assert methods["teacher"]["results"]["tiny"]["exact_match"]["mean"] == 10.0
    assert methods["sft"]["budget"]["supervised_tokens"] == 450.0
    assert methods["sft"]["results"]["arith"]["accuracy"]["mean"] == 40.0  # the old sampled accuracy is kept
    assert comparison["accuracy_sets"] == [] and comparison["stage_seconds_total"] == 3700.0

    with open(results / "comparison.csv", newline="") as handle:
        every_row = list(csv.DictReader(handle))
    rows = [r for r in every_row if r["row_kind"] == "run"]
    sft_rows = [r for r in rows if (r["method"], r["set"], r["metric"]) == ("sft", "arith", "accuracy")]
    assert [(r["run"], r["run_mean"], r["per_gen_seed"]) for r in sft_rows] == [
        ("seed1", "30.0", "20.0 30.0 40.0"), ("seed2", "50.0", "40.0 50.0 60.0")]
    assert sft_rows[0]["std"] == "14.1421" and sft_rows[0]["n_train_seeds"] == "2"
    assert sft_rows[0]["gen_seeds"] == "10 20 30" and sft_rows[0]["mean_difference"] == ""
    (kd_paired,) = [r for r in every_row if r["row_kind"] == "paired" and r["method"] == "kd-forward_kl"]
    assert (kd_paired["baseline"], kd_paired["ci_low"], kd_paired["p_value"], kd_paired["run"]) == (
        "sft", "-10.7062", "0.2951672353008663", "seed1 seed2")  # p exact in the CSV and JSON
    assert {r["method"] for r in rows} == {"teacher", "untrained", "sft", "kd-forward_kl", "minillm", "my-new-method"}


def test_plots_are_written_and_referenced(results, tmp_path):
    out_dir = tmp_path / "report"
    assert load_tool().main([str(results), "--out-dir", str(out_dir)]) == 0
    for name in ("rougeL.png", "training_curves.png"):
        data = (out_dir / "plots" / name).read_bytes()
        assert data.startswith(PNG_HEADER) and len(data) > 1000
        assert f"](plots/{name})" in (out_dir / "comparison.md").read_text()
    assert not (results / "comparison.md").exists()


def test_readme_section_is_replaced(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\nintro\n<!-- results:tiny:start -->\nold numbers\n<!-- results:tiny:end -->\n"
                      "tail\n<!-- results:other:start -->\nkeep\n<!-- results:other:end -->\n")
    assert load_tool().main([str(results), "--readme", str(readme), "--readme-tag", "tiny"]) == 0
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# Project\n\nintro\n<!-- results:tiny:start -->\nRows scored: ")
    assert "| SFT | baseline | gold labels | 54.00 ± 2.83 |" in text and "| Method | Init |" in text
    assert "![Rouge-L per eval set](results/tiny/plots/rougeL.png)" in text
    assert "[results/tiny/comparison.md](results/tiny/comparison.md)" in text
    assert text.endswith("<!-- results:tiny:end -->\ntail\n<!-- results:other:start -->\nkeep\n"
                         "<!-- results:other:end -->\n")


def test_readme_without_markers_fails_before_writing(results, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n")
    assert load_tool().main([str(results), "--readme", str(readme), "--readme-tag", "tiny"]) == 1
    assert "<!-- results:tiny:start -->" in capsys.readouterr().err
    assert readme.read_text() == "# Project\n" and not (results / "comparison.md").exists()


def test_nothing_evaluated_is_a_clear_error(tmp_path):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    result = subprocess.run([sys.executable, "tools/report.py", str(tmp_path / "empty")], cwd=REPO,
                            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    assert "error: nothing evaluated under" in result.stderr and "eval/<method>/<run>/summary.json" in result.stderr


def test_plain_tables_of_eval_folders_still_work(results, tmp_path, capsys):
    out = tmp_path / "table.md"
    assert load_tool().main([str(results / "eval/teacher/init"), str(results / "eval/minillm/seed1"),
                             "--metrics", "rougeL", "--out", str(out)]) == 0
    assert "| teacher | -1.00 ± -1.00 |" in out.read_text()  # evaluate.py's own mean/std, as given
    assert out.read_text() == capsys.readouterr().out


def test_method_and_run_order():
    assert method_order({"zeta", "sft", "teacher", "alpha"}) == ["teacher", "sft", "alpha", "zeta"]
    assert run_order(["seed10", "seed2", "init", "other"]) == ["init", "seed2", "seed10", "other"]
    assert all(m.family and m.init and m.objective for m in METHODS.values())


def test_single_generation_seed_and_no_baseline(tmp_path):
    root = tmp_path / "r"
    write_summary(root, "kd-reverse_kl", "seed3", {"tiny": {"rougeL": [42.0]}}, seeds=[10])
    comparison = build_comparison(load_results(root))
    cell = comparison["methods"][0]["results"]["tiny"]["rougeL"]
    assert (cell["mean"], cell["std"], cell["n_gen_seeds"]) == (42.0, 0.0, 1)
    assert comparison["baseline"] is None and comparison["paired_differences"] == []



def test_header_names_rows_seeds_data_sources_and_arms_not_run(tmp_path):
    """Issue 17, item 7: rows scored per set and the generation seeds; each arm's training data (the
    DSS arms on GSM8K, the others on dolly); the arms METHODS left out; one seed: no ± and no ≈."""
    root = tmp_path / "r"
    write_summary(root, "sft", "seed10", {"dolly": {"rougeL": [40.0]}}, seeds=[10])
    write_summary(root, "dss", "seed10", {"dolly": {"rougeL": [40.0]}}, seeds=[10])
    write_json(root / "driver.json", {
        "methods": ["sft", "dss"], "methods_not_run": ["kd", "seqkd"], "max_eval_rows": 10, "teacher_cache_top_k": 64,
        "data_sources": {"instruction": "data/dolly", "step-by-step": "gsm8k rationale rows from data/gsm8k"}})
    comparison = build_comparison(load_results(root))
    section = results_section(comparison)
    assert "Rows scored: dolly 10 (the first MAX_EVAL_ROWS=10 of each set). Generation seeds: 10." in section
    assert "Training data: SFT: data/dolly; DSS: gsm8k rationale rows from data/gsm8k." in section
    assert "Not run (the driver's METHODS left them out): `kd`, `seqkd`." in section
    assert "KD and DSS-KD read their teacher from a top-64 + tail cache" in section
    rows = table_rows(main_table(comparison))
    # equal to SFT, yet no ≈ (one training seed: no test) and no ± (one generation seed: no spread)
    assert rows["SFT"][2:] == rows["DSS"][2:] == ["40.00", "one value (1 training seed, 1 generation seed): no spread"]

def test_rows_whose_sets_have_different_runs_say_so_per_set(tmp_path):
    root = tmp_path / "r"
    write_summary(root, "dss", "seed1", {"tiny": {"rougeL": [10.0, 12.0, 14.0]}, "arith": {"rougeL": [5.0, 6.0, 7.0]}})
    write_summary(root, "dss", "seed2", {"tiny": {"rougeL": [20.0, 22.0, 24.0]}})
    rows = table_rows(main_table(build_comparison(load_results(root))))
    assert rows["DSS"] == ["step-by-step, black-box", METHODS["dss"].data, "17.00 ± 7.07", "6.00 ± 1.00",
                           "tiny: std over 2 training seeds; arith: std over 3 generation seeds (1 training seed)"]


# ---------------------------------------------------------------- new-format results: greedy accuracy, families

# The eval set's gold answers: arithmetic 4, 4, 7, 4 (majority "4": 75%), logic yes, no (50%),
# describe open-ended (no answer) -> pooled majority accuracy (3 + 1) / 6 = 66.67%.
EVAL_ROWS = ([{"instruction": "q", "output": "o", "category": "arithmetic", "answer": a} for a in "4474"] +
             [{"instruction": "q", "output": "o", "category": "logic", "answer": a} for a in ("yes", "no")] +
             [{"instruction": "q", "output": ["a", "b"], "category": "describe", "answer": ""}] * 2)


def reasoning_entry(path: Path, rouge: float, strict: float, logic: float | None = None) -> dict:
    """An "arith" entry of the new summary format: greedy accuracy and per-family results."""
    families = {"arithmetic": {"rows": 4, "answer_rows": 4, "rougeL": [rouge, rouge],
                               "accuracy_strict": strict, "accuracy_flexible": strict + 5.0},
                "describe": {"rows": 2, "multi_answer_rows": 2, "rougeL": [rouge, rouge],
                             "distinct_per_prompt": 1.5, "coverage": 50.0}}
    if logic is not None:
        families["logic"] = {"rows": 2, "answer_rows": 2, "rougeL": [rouge, rouge], "accuracy_strict": logic,
                             "accuracy_flexible": logic}
    return {"path": str(path), "rougeL": [rouge - 1.0, rouge + 1.0], "answer_rows": 6,
            "accuracy_decoding": "greedy", "accuracy_strict": strict, "accuracy_flexible": strict + 5.0,
            "families": families}


@pytest.fixture
def reasoning_results(tmp_path) -> Path:
    root = tmp_path / "results" / "new"
    eval_path = tmp_path / "data" / "arith" / "valid.jsonl"
    write_log(eval_path, EVAL_ROWS)
    write_summary(root, "teacher", "init", {"arith": reasoning_entry(eval_path, 60.0, 85.0, logic=70.0)}, seeds=[10, 20])
    # Per training seed: Rouge-L run means and greedy strict accuracy.
    scores = {"sft": ([30.0, 32.0, 34.0], [40.0, 50.0, 60.0]),
              "kd-forward_kl": ([31.0, 33.0, 35.0], [42.0, 53.0, 64.0]),  # Δ Rouge-L 1, 1, 1; Δ accuracy 2, 3, 4
              "sft-continued": ([30.0, 32.0, 34.0], [40.0, 51.0, 60.0]),
              "minillm": ([30.0, 33.0, 34.0], [41.0, 52.0, 58.0])}  # Δ accuracy vs SFT 1, 2, −2
    for method, (rouge, strict) in scores.items():
        for seed, (rouge_mean, accuracy) in enumerate(zip(rouge, strict), 1):
            write_summary(root, method, f"seed{seed}", {"arith": reasoning_entry(eval_path, rouge_mean, accuracy)},
                          seeds=[10, 20])
    write_json(root / "runs/sft/seed1/final.json", {"steps": 100, "tokens": 1000, "train_seconds": 10.0})
    write_json(root / "runs/sft-continued/seed1/final.json", {"steps": 8, "tokens": 80, "train_seconds": 1.0})
    write_json(root / "runs/minillm/seed1/final.json", {"steps": 8, "rollout_tokens": 500, "ptx_tokens": 2000,
                                                        "train_seconds": 9.0})
    write_json(root / "runs/dss/seed1/final.json", {"steps": 100, "tokens": 1300, "train_seconds": 12.0,
                                                    "tokens_by_stream": {"label": 300, "rationale": 900}})
    write_json(root / "runs/dss-gold/seed1/final.json", {"steps": 100, "tokens": 1300, "train_seconds": 12.0,
                                                         "tokens_by_stream": {"label": 300, "rationale": 900}})
    write_json(root / "data/dss-teacher/raw.stats.json", {
        "rows": 10, "teacher_rows_written": 8, "rows_dropped": 2, "consistency_rate": 90.0,
        "parse": {"failure_rate": 0.2, "teacher_label_accuracy": 75.0}})
    write_json(root / "stages/01-sft.json", {"name": "sft", "seconds": 5.0, "finished_at": "2026-01-01T10:05:00"})
    write_json(root / "stages/02-teacher.json", {"name": "teacher", "seconds": 9.0,
                                                 "finished_at": "2026-01-01T10:00:00"})
    return root


def test_reasoning_main_and_paired_tables(reasoning_results):
    assert load_tool().main([str(reasoning_results), "--no-plots"]) == 0
    markdown = (reasoning_results / "comparison.md").read_text()
    results = markdown.split("## Results")[1].split("## Per family")[0]
    assert "| Method | Family | Data | Rouge-L arith | Accuracy strict arith | ± |" in results
    rows = table_rows(results)
    assert rows["Teacher"][2:] == ["60.00 ± 1.41", "85.00", "arith: std over 2 generation seeds (1 training "
                                   "seed); Accuracy strict arith: one greedy value (1 training seed)"]
    assert rows["Majority answer"][2:] == ["–", "66.67", "exact"]  # placed after the reference rows
    assert list(rows)[:2] == ["Teacher", "Majority answer"]
    # KD − SFT: Rouge-L 1, 1, 1: no t interval (it would be the point 1 with p = 0): the sign test
    # gives 2·(1/2)³ = 0.25, ≈. Accuracy 2, 3, 4: raw p = 0.035, but Holm over the primary family
    # of 3 (KD − SFT, MiniLLM − SFT, MiniLLM − its control) makes it 3·0.035 = 0.105: ≈.
    assert rows["KD (forward KL)"][2:4] == ["33.00 ± 2.00 ≈", "53.00 ± 11.00 ≈"]
    assert rows["MiniLLM ▲"][3] == "50.33 ± 8.62 ≈"  # Δ 1, 2, −2: the CI contains 0
    paired = table_rows(results.split("| Method | vs |")[1])
    # Accuracy differences 2, 3, 4: mean 3, sd 1, se 1/√3, t_0.975,2 = 4.3027 -> 3 ± 2.4842;
    # p = 2·(1/2 − t/(2√(2 + t²))) with t = 3√3 = 0.0351. Holm, Rouge-L: 0.25, 0.423, 0.423 ->
    # 0.75, 0.845, 0.845; accuracy: 0.0351, 0.807, 1 -> 0.105, 1, 1.
    assert paired["KD (forward KL)"] == ["SFT", "primary", "+1.00 (all 3 equal) ≈", "0.250 (sign)", "0.750",
                                         "+3.00 [+0.52, +5.48] ≈", "0.035", "0.105", "3"]
    assert paired["MiniLLM"][:2] == ["SFT", "primary"] and paired["MiniLLM"][5].endswith("≈")
    # A control arm against SFT is exploratory: raw p, no adjustment.
    assert paired["SFT (continued)"][1:2] + paired["SFT (continued)"][4:5] == ["exploratory", "expl."]
    # Against its control arm: Rouge-L Δ 0, 1, 0 -> sd 1/√3, se 1/3, t = 1: 1/3 ± 4.3027/3,
    # p = 2·(1/2 − 1/(2√3)) = 0.423; accuracy Δ 1, 1, −2 -> mean 0, se 1: ± 4.3027, p = 1.
    control = [line for line in results.splitlines() if line.startswith("| MiniLLM | SFT (continued) |")]
    assert control == ["| MiniLLM | SFT (continued) | primary | +0.33 [-1.10, +1.77] ≈ | 0.423 | 0.845 | "
                       "+0.00 [-4.30, +4.30] ≈ | 1.000 | 1.000 | 3 |"]
    assert "arith Rouge-L: 3; arith Accuracy strict: 3;" in results
    assert "Accuracy strict = the label after the answer marker only (no marker = wrong), from greedy decoding" \
        in results


def test_reasoning_full_report_sections(reasoning_results):
    assert load_tool().main([str(reasoning_results), "--no-plots"]) == 0
    markdown = (reasoning_results / "comparison.md").read_text()
    assert ("**Teacher accuracy (strict) per family, target ≥ 80%:** Teacher arithmetic 85.00 (meets); "
            "Teacher logic 70.00 (BELOW).") in markdown
    strict = markdown.split("#### Accuracy strict per reasoning family")[1].split("####")[0]
    assert "| Method | arithmetic (4 rows) | logic (2 rows) |" in strict
    family_rows_ = table_rows(strict)
    assert family_rows_["Teacher"] == ["**85.00**", "**70.00**"]
    assert family_rows_["Majority answer"] == ["75.00", "50.00"]
    assert family_rows_["SFT"] == ["50.00 ± 10.00", "–"]
    coverage = markdown.split("#### Coverage")[1].split("##")[0]
    assert "| Method | describe (2 rows) |" in coverage and table_rows(coverage)["SFT"] == ["50.00 ± 0.00"]
    assert "## Paired differences per family" in markdown
    assert "| KD (forward KL) | SFT | arith | arithmetic | Accuracy strict | +3.00 [+0.52, +5.48] | 0.035 | 3 |" \
        in markdown
    teacher_data = table_rows(markdown.split("## Teacher-written data")[1])
    assert teacher_data["`data/dss-teacher/raw.stats.json`"] == ["8", "2", "20.00%", "90.00", "75.00"]
    stages = markdown.split("## Stages (in run order)")[1]
    assert stages.index("| teacher |") < stages.index("| sft |")
    budget = table_rows(markdown.split("| Method | Init |")[1])
    # DSS trains on more tokens than SFT (1,200 > 1,000): ▲.
    assert budget["DSS ▲"][3:8] == ["100", "", "1,200", "", ""]
    assert budget["DSS (gold labels) ▲"][3:8] == ["100", "300", "900", "", ""]
    assert budget["MiniLLM ▲"][2:8] == ["8", "108", "", "", "500", "2,000"]
    assert budget["SFT (continued) ▲"][2:5] == ["8", "108", "80"]


def test_reasoning_json_and_plots(reasoning_results, tmp_path):
    out_dir = tmp_path / "report"
    assert load_tool().main([str(reasoning_results), "--out-dir", str(out_dir)]) == 0
    for name in ("rougeL.png", "accuracy.png", "accuracy_families.png"):
        assert (out_dir / "plots" / name).read_bytes().startswith(PNG_HEADER)
    comparison = json.loads((out_dir / "comparison.json").read_text())
    assert comparison["majority_answer"]["arith"]["families"]["arithmetic"] == {
        "answer_rows": 4, "majority_answer": "4", "accuracy": 75.0}
    assert comparison["family_rows"]["arith"]["describe"] == {"rows": 2, "multi_answer_rows": 2}
    methods = {m["key"]: m for m in comparison["methods"]}
    assert methods["dss-gold"]["budget"]["tokens_by_source"] == {"gold": 300.0, "teacher-written": 900.0}
    assert methods["minillm"]["budget"]["exceeds_sft"] and methods["sft"]["budget"]["exceeds_sft"] is False
    assert methods["sft"]["families"]["arith"]["arithmetic"]["accuracy_flexible"]["mean"] == 55.0
    assert comparison["teacher_data"]["data/dss-teacher/raw.stats.json"]["failure_rate"] == 20.0


def test_majority_answer_accuracy_by_hand():
    rows = [{"answer": "4", "category": "arithmetic"}, {"answer": "4.", "category": "arithmetic"},
            {"answer": "7", "category": "arithmetic"}, {"answer": "Yes"}, {"answer": ""}, {"output": "x"}]
    assert majority_answer_accuracy(rows) == {
        "arithmetic": {"answer_rows": 3, "majority_answer": "4", "accuracy": 66.6667},
        "all": {"answer_rows": 1, "majority_answer": "yes", "accuracy": 100.0}}


def test_stream_tokens_and_run_order_of_stages():
    final = {"tokens": 1200, "tokens_by_stream": {"label": 300, "rationale": 900}, "rollout_tokens": 5}
    assert [stream_tokens(final, s, False) for s in ("label", "rationale", "rollout", "pretraining")] == [
        300, 900, 5, None]
    assert stream_tokens({"tokens": 1200}, "label", True) == 1200  # one stream: its tokens
    assert stream_tokens({"tokens": 1200, "tokens_by_stream": {"default": 1200}}, "label", True) == 1200
    assert stream_tokens({"tokens": 1200}, "label", False) is None  # two streams, no split: unknown
    stages = [{"name": "b", "finished_at": "2026-01-02"}, {"name": "c"}, {"name": "a", "finished_at": "2026-01-01"}]
    assert [s["name"] for s in stages_in_run_order(stages)] == ["a", "b", "c"]


def test_the_stories_table_and_its_stage_times_go_into_the_readme(tmp_path, capsys):
    root = tmp_path / "stories"
    (root / "comparison").mkdir(parents=True)
    (root / "comparison/comparison.md").write_text("| model | forward KL |\n|---|---|\n| seqkd | 1.126 |\n")
    write_json(root / "comparison/comparison.json", {"rows": [{"model": "seqkd", "forward_kl": 1.126}]})
    write_json(root / "stages" / "seqkd.json", {"name": "seqkd", "seconds": 35.2, "finished_at": "2026-11-29T22:01:00"})
    write_json(root / "stages" / "teacher.json", {"name": "teacher", "seconds": 5.0, "finished_at": "2026-11-29T22:00:00"})
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:stories:start -->\nold\n<!-- results:stories:end -->\nprose\n")
    assert load_tool().main([str(root), "--readme", str(readme), "--readme-tag", "stories"]) == 0
    text = readme.read_text()
    assert "old" not in text and "| seqkd | 1.126 |" in text and text.endswith("prose\n")
    assert "Stage times: teacher 5.0 s · seqkd 35.2 s." in text  # in the order they ran
    assert not (root / "comparison/comparison.csv").exists()  # the table is the stage's own; nothing else is written
    with pytest.raises(SystemExit):
        load_tool().main([str(root), "--no-plots"])


# ---------------------------------------------------------------- one training seed: prompt-level verdicts, greedy,
# entropy, compute, reference rows and labels true of the run

# The first 4 rows are scored (MAX_EVAL_ROWS=4); the 4 after them are not.
PICK_ROWS = [("fox", ["fox", "cat"]), ("fox", ["fox", "dog"]), ("cat", ["cat", "fox"]), ("dog", ["dog", "cat"])] + \
    [("cat", ["cat", "fox", "dog", "bird"])] * 4
SCORED = 4
STUDENT_SHAPE = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "vocab_size": 1000}
TEACHER_SHAPE = {"model_type": "gpt2", "n_layer": 4, "n_embd": 128, "vocab_size": 1000}
# N = layers·(4·width² + 2·width·4·width) + vocabulary·width
STUDENT_N, TEACHER_N = 2 * (4 * 64 ** 2 + 8 * 64 ** 2) + 64_000, 4 * (4 * 128 ** 2 + 8 * 128 ** 2) + 128_000
# Which scored prompt each model answers right (1) per decoding: generation seeds 10, 20 and greedy.
# A wrong answer "The answer is bird." has Rouge-L 75 against "The answer is <animal>."
RIGHT = {"teacher": {"10": [1, 1, 1, 1], "20": [1, 1, 1, 1], "greedy": [1, 1, 1, 1]},
         "sft": {"10": [1, 1, 0, 0], "20": [1, 0, 0, 0], "greedy": [1, 1, 0, 0]},
         "kd-forward_kl": {"10": [1, 1, 1, 0], "20": [1, 1, 0, 1], "greedy": [1, 1, 1, 1]},
         "sft-continued": {"10": [1, 1, 0, 0], "20": [1, 1, 0, 0], "greedy": [1, 1, 0, 0]},
         "minillm": {"10": [1, 1, 1, 1], "20": [1, 1, 1, 1], "greedy": [1, 1, 0, 0]}}
ENTROPY = {"teacher": [0.5, 0.7], "sft": [1.9, 2.1], "kd-forward_kl": [1.7, 1.9], "sft-continued": [1.8, 2.0],
           "minillm": [0.9, 1.1]}


def write_evaluation(root: Path, work: Path, method: str, model: Path) -> None:
    """answers.jsonl of both generation seeds and the greedy decoding, and the summary.json that
    evaluate.py computes from them (Rouge-L, accuracy, greedy keys, entropy; a summary-only
    "describe" family with fact, label and validity keys)."""
    references = [f"The answer is {answer}." for answer, _ in PICK_ROWS[:SCORED]]
    answers = [answer for answer, _ in PICK_ROWS[:SCORED]]
    texts = {decoding: [reference if right else "The answer is bird." for reference, right in zip(references, rights)]
             for decoding, rights in RIGHT[method].items()}
    run_dir = root / "eval" / method / ("init" if method == "teacher" else "seed10")
    for decoding, predictions in texts.items():
        write_log(run_dir / "tiny" / decoding / "answers.jsonl",
                  [{"prompt": "Which animal?", "reference": reference, "prediction": prediction, "answer": answer,
                    "category": "pick"} for reference, prediction, answer in zip(references, predictions, answers)])
    rouge = [compute_metrics(texts[seed], references)["rougeL"] for seed in ("10", "20")]
    greedy_rouge = compute_metrics(texts["greedy"], references)["rougeL"]
    strict = answer_accuracy(texts["greedy"], answers, strict=True)
    scores = {"rougeL": rouge, "rougeL_greedy": greedy_rouge, "entropy": ENTROPY[method],
              "rougeL_label": [value - 10.0 for value in rouge], "rougeL_label_greedy": greedy_rouge - 10.0,
              "accuracy_strict": strict, "accuracy_flexible": strict}
    describe = {"rows": 2, "fact_rows": 2, "multi_answer_rows": 2, "fact_f1": [40.0, 44.0], "fact_f1_greedy": 50.0,
                "validity": [80.0, 90.0], "distinct_valid_per_prompt": 1.5}
    entry = {**summary_entry(scores, "tiny"), "path": str(work / "data/tiny/valid.jsonl"), "rows": SCORED,
             "answer_rows": SCORED, "accuracy_decoding": "greedy",
             "families": {"pick": {**summary_entry(scores), "rows": SCORED, "answer_rows": SCORED},
                          "describe": {**summary_entry(describe), "rows": 2, "fact_rows": 2, "multi_answer_rows": 2}}}
    write_json(run_dir / "summary.json", {"model": method, "model_path": str(model), "seeds": [10, 20],
                                          "sets": {"tiny": entry}})


@pytest.fixture
def one_seed(tmp_path) -> Path:
    """The main command's shape: one training seed, no pretraining corpus, MAX_EVAL_ROWS=4, an
    absolute WORK; model folders with config.json; run folders with their flags."""
    work = tmp_path / "work"
    root = work / "results" / "tiny"
    write_log(work / "data/tiny/valid.jsonl",
              [{"instruction": "Which animal?", "input": "", "output": f"The answer is {answer}.", "answer": answer,
                "choices": choices, "category": "pick"} for answer, choices in PICK_ROWS])
    student, teacher = work / "checkpoints/student", work / "runs-teacher/best"
    write_json(student / "config.json", STUDENT_SHAPE)
    write_json(teacher / "config.json", TEACHER_SHAPE)
    for method in RIGHT:
        write_evaluation(root, work, method, teacher if method == "teacher" else student)
    runs = {"teacher": ({"steps": 20, "tokens": 3000}, {"model_path": str(teacher), "epochs": 3}),
            "sft": ({"steps": 10, "tokens": 1000, "tokens_by_stream": {"default": 1000}},
                    {"model_path": str(student), "epochs": 2}),
            "kd-forward_kl": ({"steps": 10, "tokens": 1000}, {"model_path": str(student), "epochs": 2,
                                                              "kd_ratio": 0.5, "ptx_kd_ratio": 0.0,
                                                              "teacher_model_path": str(teacher)}),
            "seqkd": ({"steps": 10, "tokens": 1000}, {"model_path": str(student), "epochs": 2}),
            "sft-continued": ({"steps": 4, "tokens": 400, "ptx_tokens": 0},
                              {"model_path": str(root / "runs/sft/seed10"), "total_steps": 4, "kd_ratio": 0.0,
                               "ptx_kd_ratio": 0.5, "teacher_model_path": str(teacher)}),
            "minillm": ({"steps": 4, "rollout_tokens": 200, "ptx_tokens": 0},
                        {"model_path": str(root / "runs/sft/seed10"), "ppo_epochs": 2, "ptx_kd_ratio": 0.5,
                         "teacher_model_path": str(teacher)})}
    for method, (final, config) in runs.items():
        write_json(root / "runs" / method / "seed10" / "final.json", {**final, "train_seconds": 1.0})
        write_json(root / "runs" / method / "seed10" / "config.json", config)
    write_json(root / "driver.json", {
        "preset": "tiny", "methods": list(RIGHT)[1:] + ["seqkd"], "methods_not_run": [], "train_seeds": [10],
        "data_sources": {"instruction": str(work / "data/tiny"), "step-by-step": f"rows from {work}/data/tiny"},
        "pretraining_corpus": None, "max_eval_rows": SCORED, "teacher_cache_top_k": None,
        "settings": {"WORK": str(work)}})
    return root


def report(root: Path, *flags: str) -> tuple[str, dict]:
    assert load_tool().main([str(root), *flags]) == 0
    return (root / "comparison.md").read_text(), json.loads((root / "comparison.json").read_text())


def differences_of(comparison: dict) -> dict:
    return {(d["method"], d["baseline"], d["family"], d["metric"]): d for d in comparison["paired_differences"]}


def test_one_training_seed_gets_prompt_level_verdicts_labelled_as_evaluation_noise(one_seed):
    markdown, comparison = report(one_seed, "--no-plots")
    differences = differences_of(comparison)
    # T = 1: per-prompt Rouge-L means over the two seeds, KD [100, 100, 87.5, 87.5] − SFT [100, 87.5, 75, 75].
    rouge = differences["kd-forward_kl", "sft", None, "rougeL"]
    assert (rouge["level"], rouge["n_prompts"], rouge["mean_difference"], rouge["seeds"]) == (
        "prompts", 4, 9.375, ["seed10"])
    assert rouge["test"].startswith("paired bootstrap over test prompts") and "evaluation noise only" in rouge["test"]
    # A resample lands at ≤ 0 only by drawing prompt 1 four times (1/256): p small but not 0.
    assert 0 < rouge["p_value"] < 0.05 and 0.0 <= rouge["ci_low"] <= rouge["ci_high"] <= 12.5
    # Greedy accuracy: KD right on all 4, SFT on 2 -> 2 discordant pairs, McNemar p = 2·(1/2)² = 0.5.
    accuracy = differences["kd-forward_kl", "sft", None, "accuracy_strict"]
    assert (accuracy["only_method_right"], accuracy["only_baseline_right"], accuracy["p_value"],
            accuracy["mean_difference"]) == (2, 0, 0.5, 50.0)
    assert accuracy["test"].startswith("McNemar's exact test")
    # MiniLLM and SFT decode greedily alike: every per-prompt difference is 0 -> no interval, p = 1, ≈.
    same = differences["minillm", "sft", None, "rougeL_greedy"]
    assert (same["ci_low"], same["p_value"], same["approx"]) == (None, 1.0, True)
    # Primary family per metric: KD − SFT, MiniLLM − SFT, MiniLLM − SFT (continued); SFT (continued) − SFT
    # and the per-family rows are exploratory, with no prompt-level test.
    families = comparison["primary_families"]
    assert {tuple(f["members"][0]) + (f["size"],) for f in families} == {("kd-forward_kl", "sft", 3)}
    assert differences["sft-continued", "sft", None, "rougeL"]["primary"] is False
    assert differences["kd-forward_kl", "sft", "pick", "rougeL"]["p_value"] is None
    paired = table_rows(markdown.split("| Method | vs |")[1])
    assert paired["KD (forward KL)"][2].endswith("†") and paired["KD (forward KL)"][3] == format_p_of(rouge)
    assert paired["MiniLLM"][8].startswith("+0.00 (all 4 equal) †")  # greedy Rouge-L column
    assert "† = one training seed: a paired bootstrap over the test prompts" in markdown
    assert "it measures evaluation noise only" in markdown


def format_p_of(difference: dict) -> str:
    from minillm.statistics import format_p
    return format_p(difference["p_value"])


def test_greedy_rouge_and_entropy_sit_beside_temperature_1_and_the_claims_carry_them(one_seed):
    markdown, comparison = report(one_seed, "--no-plots")
    results = markdown.split("## Results")[1]
    assert ("| Method | Family | Data | Rouge-L tiny | Rouge-L greedy tiny | Accuracy strict tiny | "
            "Entropy (nats/token) tiny | ± |") in results
    rows = table_rows(results)
    # MiniLLM: 100 at T = 1 (both seeds right) but 87.5 greedy, as SFT; entropy 1.0 against SFT's 2.0.
    assert rows["MiniLLM ▲"][2:6] == ["100.00 ± 0.00", "87.50 ≈", "50.00 ≈", "1.00 ± 0.14"]
    assert rows["SFT"][2:6] == ["84.38 ± 4.42", "87.50", "50.00", "2.00 ± 0.14"]
    assert "a gain at temperature 1 that greedy decoding does not show is sharpness" in results
    (claim,) = [c for c in comparison["claims"] if (c["method"], c["baseline"]) == ("minillm", "sft")]
    assert claim["values"]["method"] == {"rougeL": 100.0, "rougeL_greedy": 87.5, "entropy": 1.0,
                                         "accuracy_strict": 50.0}
    assert claim["values"]["baseline"]["entropy"] == 2.0
    greedy = claim["differences"]["rougeL_greedy"]
    assert (greedy["mean_difference"], greedy["p_holm"], greedy["survives_holm"], greedy["level"]) == (
        0.0, 1.0, False, "prompts")
    assert set(claim["differences"]) == {"rougeL", "rougeL_greedy", "accuracy_strict"}


def test_a_token_matched_run_counts_the_teacher_pass_over_the_epochs_it_ran():
    """label-distill-tokens runs --epochs × (DSS tokens ÷ label tokens) passes: one teacher pass
    wrote its data, so the teacher-written tokens count once over final.json's epochs, not --epochs."""
    method = METHODS["label-distill-tokens"]
    budget = {"runs": 1, "tokens": 1100, "tokens_by_source": {"teacher-written": 1100.0}, "epochs": 11.0}
    assert arm_flops(method, budget, {"epochs": 8}, 10, 100)["teacher_data"] == 2 * 100 * 1100 / 11
    assert arm_flops(method, {**budget, "epochs": None}, {"epochs": 8}, 10, 100)["teacher_data"] == 2 * 100 * 1100 / 8
    missing = arm_flops(method, {**budget, "epochs": None}, {"total_steps": 40}, 10, 100)
    assert missing["own"] is None and "epochs" in missing["missing"]


def test_compute_accounting_by_hand(one_seed):
    markdown, comparison = report(one_seed, "--no-plots")
    compute = {m["key"]: m["compute"] for m in comparison["methods"]}
    s, t = STUDENT_N, TEACHER_N
    assert (s, t) == (162_304, 914_432)
    assert compute["sft"]["own"] == 6 * s * 1000  # 6·N·tokens
    # KD: its training + the teacher's forward on every training token (no cache).
    assert (compute["kd-forward_kl"]["student_training"], compute["kd-forward_kl"]["teacher_scoring"]) == (
        6 * s * 1000, 2 * t * 1000)
    # SeqKD: + the teacher's pass that wrote one epoch (of 2) of its training tokens.
    assert compute["seqkd"]["teacher_data"] == 2 * t * 500 and compute["seqkd"]["own"] == 6 * s * 1000 + 2 * t * 500
    # MiniLLM: rollouts trained on for 2 PPO epochs, sampled once by the student, scored once by the
    # teacher (no corpus: 0 pretraining tokens); incl. its SFT init.
    minillm = compute["minillm"]
    assert (minillm["student_training"], minillm["student_sampling"], minillm["teacher_scoring"]) == (
        6 * s * 400, 2 * s * 200, 2 * t * 200)
    assert minillm["with_init"] == minillm["own"] + 6 * s * 1000
    assert compute["teacher"] == {**compute["teacher"], "own": 6 * t * 3000, "shared": True}
    assert comparison["compute"]["models"]["sft"]["matmul_parameters"] == s
    assert comparison["compute"]["models"]["sft"]["path"] == "checkpoints/student/config.json"
    budget = table_rows(markdown.split("| Method | Init |")[1])
    assert budget["SFT"][-2:] == ["9.74e8", "9.74e8"] and budget["Teacher"][-2:] == ["1.65e10 (shared)"] * 2
    assert budget["MiniLLM ▲"][-2:] == ["8.20e8", "1.79e9"]
    assert "gpt2 2×64, vocabulary 1,000: N = 162,304" in markdown
    assert "a forward pass costs 2·N FLOPs per token, a training step (forward + backward) 6·N" in markdown
    # The quality-vs-compute figure: one panel per compared metric, a point per student arm with compute.
    figure = quality_vs_compute(comparison, method_colors(comparison))
    assert [axes.get_title() for axes in figure.axes] == ["Rouge-L tiny", "Rouge-L greedy tiny", "Accuracy strict tiny"]
    # one point each: SFT, KD, SFT (continued), MiniLLM
    assert all(axes.get_xscale() == "log" and len(axes.containers) == 4 for axes in figure.axes)


def test_matmul_parameters_of_gpt2_small_and_of_a_gated_model():
    # GPT-2 small: 124,439,808 parameters − 786,432 position embeddings − 121,344 biases and norms.
    assert matmul_parameters({"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "vocab_size": 50257}) == 123_532_032
    # q, o: 2·64·(4·16); k, v: 2·64·(2·16); gate, up, down: 3·64·172; × 2 layers; + 512·64.
    llama = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
             "num_key_value_heads": 2, "intermediate_size": 172, "vocab_size": 512}
    assert matmul_parameters(llama) == 2 * (8192 + 4096 + 33024) + 32768
    with pytest.raises(ShapeError, match="model_type 'bert'"):
        matmul_parameters({"model_type": "bert"})


def test_label_task_fact_and_validity_tables_render_when_the_summaries_have_them(one_seed):
    markdown, _ = report(one_seed, "--no-plots")
    label = table_rows(markdown.split("## Scored against the label references")[1].split("##")[0])
    assert label["KD (forward KL)"][2:4] == ["83.75 ± 0.00", "90.00"]  # Rouge-L vs the label refs: T = 1, greedy
    for title, sft_cell in (("Fact F1 per family: stated facts", "42.00 ± 2.83"),
                            ("Fact F1 per family (greedy)", "50.00"),
                            ("Validity: percent of answers", "85.00 ± 7.07"),
                            ("Distinct valid answers per prompt", "1.50")):
        table = markdown.split(f"#### {title}")[1].split("####")[0]
        assert table_rows(table)["SFT"] == [sft_cell], title
    assert "| Method | describe (2 rows) |" in markdown.split("#### Fact F1 per family (greedy)")[1]


def test_prompt_rouge_l_is_the_metrics_rouge_l():
    pairs = [("The foxes were running quickly.", "A fox runs quick!"), ("", "anything"), ("So the answer is 42.", "42"),
             ("cats and dogs", ["dogs, cats", "birds"]), ("Ünïcode wörds", "unicode words")]
    for prediction, reference in pairs * 2:  # the second round reads the memoised tokens
        assert prompt_rouge_l(prediction, reference) == compute_metrics([prediction], [reference])["rougeL"]


def test_declared_comparisons_are_one_list():
    keys = ["teacher", "untrained", "sft", "kd-forward_kl", "kd-reverse_kl", "sft-continued", "minillm",
            "minillm-lmops", "dss", "dss-continued", "dss-minillm", "my-arm"]
    assert declared_comparisons(keys) == [
        ("kd-forward_kl", "sft", True), ("kd-reverse_kl", "sft", False), ("sft-continued", "sft", False),
        ("minillm", "sft", True), ("minillm-lmops", "sft", False), ("dss", "sft", True),
        ("dss-continued", "sft", False), ("dss-minillm", "sft", True), ("my-arm", "sft", False),
        ("minillm", "sft-continued", True), ("minillm-lmops", "sft-continued", False),
        ("dss-minillm", "dss-continued", True)]


# ---------------------------------------------------------------- reference rows (minillm/eval/references.py)

@dataclasses.dataclass
class FakeEvalSet:
    rows: list
    prompts: list
    references: list


def fake_references_module() -> types.ModuleType:
    """minillm/eval/references.py's two functions as the world branch defines them, on FakeEvalSet."""
    module = types.ModuleType("minillm.eval.references")
    module.__spec__ = importlib.machinery.ModuleSpec("minillm.eval.references", None)

    def chance_accuracy(eval_set):
        chances = [100.0 / len(row["choices"]) for row in eval_set.rows]
        pooled = round(sum(chances) / len(chances), 4)
        return {"families": {"pick": pooled}, "pooled": pooled, "rows": len(chances)}

    def constant_answer_summary(eval_set):
        entry = {"rows": len(eval_set.rows), "rougeL_per_seed": [87.5], "rougeL_mean": 87.5, "rougeL_std": 0.0,
                 "rougeL_greedy": 87.5, "accuracy_strict": 25.0, "answer_rows": len(eval_set.rows),
                 "families": {"pick": {"rows": len(eval_set.rows), "rougeL_per_seed": [87.5], "rougeL_greedy": 87.5,
                                       "accuracy_strict": 25.0}}}
        return {"pick": "The answer is fox."}, entry

    module.chance_accuracy, module.constant_answer_summary = chance_accuracy, constant_answer_summary
    return module


def test_chance_and_constant_answer_rows_come_from_references_over_the_rows_scored(one_seed, monkeypatch):
    monkeypatch.setitem(sys.modules, "minillm.eval.references", fake_references_module())
    tool = load_tool(references="minillm.eval.references")
    loaded = []

    def load_eval_set(set_name, path):
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        loaded.append((set_name, Path(path).name))
        return FakeEvalSet(rows, ["Which animal?"] * len(rows), [row["output"] for row in rows])

    tool.load_eval_set = load_eval_set
    assert tool.main([str(one_seed), "--no-plots"]) == 0
    markdown = (one_seed / "comparison.md").read_text()
    comparison = json.loads((one_seed / "comparison.json").read_text())
    assert loaded == [("tiny", "valid.jsonl")] * 2  # one call each: chance, constant answer
    # Over the 4 scored rows (2 options each) chance is 50%, not the 37.5% of all 8 rows.
    assert comparison["chance"]["tiny"] == {"families": {"pick": 50.0}, "pooled": 50.0, "rows": 4}
    assert comparison["constant_answer"]["tiny"]["answers"] == {"pick": "The answer is fox."}
    rows = table_rows(markdown.split("## Results")[1])
    assert list(rows)[:4] == ["Teacher", "Constant answer", "Chance", "Majority answer"]
    assert rows["Constant answer"][2:6] == ["87.50", "87.50", "25.00", "–"]
    assert rows["Chance"][2:6] == ["–", "–", "50.00", "–"]
    strict = table_rows(markdown.split("#### Accuracy strict per reasoning family")[1].split("####")[0])
    assert (strict["Chance"], strict["Constant answer"], strict["Majority answer"]) == (["50.00"], ["25.00"], ["50.00"])
    assert "Chance: the expected accuracy of picking uniformly among the answer options" in markdown
    # The accuracy plots draw the chance level as a dashed line over its group.
    figure = metric_bars(comparison, "accuracy_strict", [("tiny", None)], method_colors(comparison),
                         chance={("tiny", None): 50.0})
    (line,) = figure.axes[0].collections[-1:]
    assert line.get_label().startswith("chance") and line.get_segments()[0][0][1] == 50.0


def test_missing_reference_rows_say_why(one_seed, reasoning_results):
    markdown, comparison = report(one_seed, "--no-plots")
    reason = ABSENT_REFERENCES.replace(".", "/") + ".py is not in this checkout"
    assert comparison["reference_missing"]["chance"] == {"tiny": reason}
    assert f"No Constant answer row for tiny: {reason}." in markdown
    # An eval set whose rows name no options has no chance level, whatever the checkout holds.
    _, comparison = report(reasoning_results, "--no-plots")
    assert comparison["reference_missing"]["chance"]["arith"].startswith("its rows name no answer options")


# ---------------------------------------------------------------- issue 23: report labels true of the run

def test_fault_no_pretraining_corpus_label_for_a_run_without_one(one_seed):
    markdown, comparison = report(one_seed, "--no-plots")
    minillm = next(m for m in comparison["methods"] if m["key"] == "minillm")
    assert "pretraining corpus" not in minillm["data"] and "pretraining" not in minillm["sources"]
    assert "+ the pretraining corpus" not in markdown.split("## Results")[1].split("## ")[0]
    budget = table_rows(markdown.split("| Method | Init |")[1])
    assert budget["MiniLLM ▲"][4:8] == ["", "", "200", ""]  # no pretraining source at all, not "0"


def test_fault_majority_row_counts_only_the_rows_scored(one_seed):
    _, comparison = report(one_seed, "--no-plots")
    # Scored rows 1-4: fox, fox, cat, dog -> "fox" 50%; all 8 rows would give "cat" 62.5%.
    assert comparison["majority_answer"]["tiny"]["families"]["pick"] == {
        "answer_rows": 4, "majority_answer": "fox", "accuracy": 50.0}


def test_fault_committed_report_carries_no_writers_absolute_paths(one_seed):
    work = one_seed.parents[1]
    for text in (json.dumps(report(one_seed, "--no-plots")[1]), (one_seed / "comparison.md").read_text(),
                 (one_seed / "comparison.csv").read_text()):
        assert str(work) not in text
    comparison = json.loads((one_seed / "comparison.json").read_text())
    sft = next(m for m in comparison["methods"] if m["key"] == "sft")
    assert sft["training_set"] == "data/tiny" and comparison["results_dir"] == "results/tiny"
    assert comparison["majority_answer"]["tiny"]["path"] == "data/tiny/valid.jsonl"


def test_distillms_adaptive_outputs_are_traced_per_run(results):
    """The report shows, per DistiLLM run, each validation's loss, p and replay buffer from log.jsonl
    (the latest record per step, as a resumed run repeats steps), and how far the loss rose above
    the rule's first reference; runs without the rule's fields are not listed."""
    write_summary(results, "distillm-ref", "seed1", {"tiny": {"rougeL": [50.0, 50.0, 50.0]}})
    records = [{"event": "eval", "step": 0, "valid_loss": 1.0, "sgo_probability": 0.0, "replay_buffer": 0.0},
               {"event": "eval", "step": 5, "valid_loss": 9.9, "sgo_probability": 0.1, "replay_buffer": 3.0},
               {"step": 5, "loss": 1.0},
               {"event": "eval", "step": 5, "valid_loss": 1.15, "sgo_probability": 0.1, "replay_buffer": 4.0},
               {"event": "eval", "step": 10, "valid_loss": 0.9, "sgo_probability": 0.1, "replay_buffer": 8.0}]
    write_log(results / "runs/distillm-ref/seed1/log.jsonl", records)
    write_json(results / "runs/distillm-ref/seed1/final.json", {"steps": 10, "rollout_tokens": 40,
                                                                "replayed_tokens": 12, "train_seconds": 1.0})
    write_json(results / "runs/distillm-ref/seed1/config.json", {"sgo_loss_eps": 0.1})
    assert load_tool().main([str(results), "--no-plots"]) == 0
    traced = json.loads((results / "comparison.json").read_text())["adaptive_outputs"]
    assert list(traced) == ["distillm-ref"] and traced["distillm-ref"]["loss_eps"] == 0.1
    run = traced["distillm-ref"]["runs"]["seed1"]
    assert run["steps"] == [0, 5, 10] and run["valid_loss"] == [1.0, 1.15, 0.9]
    assert run["probability"] == [0.0, 0.1, 0.1] and run["replay_buffer"] == [0.0, 4.0, 8.0]
    assert run["highest_above_first"] == pytest.approx(0.15)
    section = (results / "comparison.md").read_text().split("## DistiLLM's adaptive student outputs")[1]
    assert table_rows(section)["DistiLLM (reference recipe)"] == [
        "seed1", "1.000 → 1.150 → 0.900", "+0.150", "0.10", "0.1", "8", "40", "12"]
