"""tools/report.py on a fabricated results folder: known numbers in, known cells out."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minillm.report import METHODS, build_comparison, load_results, main_table, method_order, run_order

REPO = Path(__file__).resolve().parents[1]
SEEDS = [10, 20, 30]
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def load_tool():
    spec = importlib.util.spec_from_file_location("report_tool", REPO / "tools/report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_summary(root: Path, method: str, run: str, sets: dict[str, dict[str, list[float]]],
                  seeds: list[int] = SEEDS) -> None:
    """evaluate.py's summary.json; `sets`: set → metric → per-generation-seed values."""
    entries = {}
    for set_name, metrics in sets.items():
        entry = {"rows": 10, "path": f"/data/{set_name}/valid.jsonl"}
        for metric, values in metrics.items():
            entry |= {f"{metric}_mean": -1.0, f"{metric}_std": -1.0,  # the report recomputes from per-seed values
                      f"{metric}_per_seed": values}
        entries[set_name] = entry
    write_json(root / "eval" / method / run / "summary.json",
               {"model": method, "model_path": f"/ckpt/{method}", "seeds": seeds, "prompt_prefix": "",
                "sampling": {"temperature": 1.0}, "sets": entries})


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
    assert "| Method | Family | Rouge-L tiny | Rouge-L arith | Accuracy arith | ± |" in markdown
    rows = table_rows(markdown)
    # One training seed: mean ± std over generation seeds, said so.
    one_training_seed = "std over 3 generation seeds (1 training seed)"
    assert rows["Teacher"] == ["teacher", "62.00 ± 2.00", "–", "–", one_training_seed]
    assert rows["Untrained student"][1] == "2.00 ± 1.00"
    # Two training seeds: mean ± std of the per-run means (52, 56 -> 54 ± 2.83; 30, 50 -> 40 ± 14.14).
    assert rows["SFT"] == ["baseline", "54.00 ± 2.83", "21.00 ± 1.41", "40.00 ± 14.14",
                           "std over 2 training seeds"]
    assert rows["KD (forward KL)"] == ["white-box", "56.00 ± 1.41 ≈", "–", "–", "std over 2 training seeds"]
    assert rows["MiniLLM"] == ["white-box", "71.00 ± 1.00", "–", "–", one_training_seed]
    assert rows["my-new-method"][:2] == ["unknown", "40.00 ± 0.00"]
    assert rows["SeqKD"] == ["black-box", "not evaluated", "not evaluated", "not evaluated", "–"]
    labels = [line.split("|")[1].strip() for line in markdown.split("## Results")[1].splitlines()
              if line.startswith("| ") and not line.startswith("| Method")][:8]
    assert labels == ["Teacher", "Untrained student", "SFT", "KD (forward KL)", "SeqKD", "MiniLLM",
                      "my-new-method", "Teacher"]  # METHODS order, unknown keys last; then the budget table
    assert "≈ = within noise of SFT" in markdown and "± = sample std (ddof=1) over training seeds" in markdown
    assert capsys.readouterr().out.rstrip().endswith("Total time of the driver's 2 stages: 1h 01m.")


def test_budget_table_and_missing_pieces(results):
    assert load_tool().main([str(results), "--no-plots"]) == 0
    budget = table_rows((results / "comparison.md").read_text().split("| Method | Init |")[1])
    assert budget["SFT"] == ["random init", "2", "100", "1,100 input", "12.0 s"]
    assert budget["KD (forward KL)"][1] == "1 (+1 unfinished)"
    assert budget["MiniLLM"] == ["the SFT student", "1", "8", "500 rollout", "1m 30s"]
    assert budget["Untrained student"] == ["random init", "no training run", "–", "–", "–"]
    assert budget["Teacher"][1] == "no training run"
    assert not (results / "plots").exists()


def test_json_and_csv_keep_every_number(results):
    assert load_tool().main([str(results), "--no-plots"]) == 0
    comparison = json.loads((results / "comparison.json").read_text())
    methods = {m["key"]: m for m in comparison["methods"]}
    sft = methods["sft"]["results"]["tiny"]["rougeL"]
    assert (sft["mean"], sft["std"], sft["n_train_seeds"], sft["n_gen_seeds"]) == (54.0, 2.8284, 2, 3)
    assert sft["per_run"]["seed2"] == {"gen_seeds": SEEDS, "per_gen_seed": [54.0, 56.0, 58.0], "mean": 56.0}
    kd = methods["kd-forward_kl"]["results"]["tiny"]["rougeL"]
    assert (kd["delta_vs_sft"], kd["within_noise_of_sft"]) == (2.0, True)
    minillm = methods["minillm"]["results"]["tiny"]["rougeL"]
    assert (minillm["spread"], minillm["within_noise_of_sft"]) == ("generation seeds", False)
    assert methods["teacher"]["results"]["tiny"]["exact_match"]["mean"] == 10.0
    assert methods["sft"]["budget"]["supervised_tokens"] == 450.0
    assert comparison["accuracy_sets"] == ["arith"] and comparison["stage_seconds_total"] == 3700.0

    with open(results / "comparison.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    sft_rows = [r for r in rows if (r["method"], r["set"], r["metric"]) == ("sft", "arith", "accuracy")]
    assert [(r["run"], r["run_mean"], r["per_gen_seed"]) for r in sft_rows] == [
        ("seed1", "30.0", "20.0 30.0 40.0"), ("seed2", "50.0", "40.0 50.0 60.0")]
    assert sft_rows[0]["std"] == "14.1421" and sft_rows[0]["n_train_seeds"] == "2"
    assert sft_rows[0]["gen_seeds"] == "10 20 30" and sft_rows[0]["delta_vs_sft"] == ""
    assert {r["method"] for r in rows} == {"teacher", "untrained", "sft", "kd-forward_kl", "minillm", "my-new-method"}


def test_plots_are_written_and_referenced(results, tmp_path):
    out_dir = tmp_path / "report"
    assert load_tool().main([str(results), "--out-dir", str(out_dir)]) == 0
    for name in ("rougeL.png", "accuracy.png", "training_curves.png"):
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
    assert "old numbers" not in text and text.startswith("# Project\n\nintro\n<!-- results:tiny:start -->\n| Method")
    assert "| SFT | baseline | 54.00 ± 2.83 |" in text and "| Method | Init |" in text
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
    assert comparison["baseline"] is None and "within_noise_of_sft" not in cell


def test_rows_whose_sets_have_different_runs_say_so_per_set(tmp_path):
    root = tmp_path / "r"
    write_summary(root, "dss", "seed1", {"tiny": {"rougeL": [10.0, 12.0, 14.0]}, "arith": {"rougeL": [5.0, 6.0, 7.0]}})
    write_summary(root, "dss", "seed2", {"tiny": {"rougeL": [20.0, 22.0, 24.0]}})
    rows = table_rows(main_table(build_comparison(load_results(root))))
    assert rows["DSS"] == ["step-by-step, black-box", "17.00 ± 7.07", "6.00 ± 1.00",
                           "tiny: std over 2 training seeds; arith: std over 3 generation seeds (1 training seed)"]
