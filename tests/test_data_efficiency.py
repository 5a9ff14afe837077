"""tools/data_efficiency.py: the DSS paper's data-efficiency curve from one comparison.json per
training fraction (scripts/dss/run_data_efficiency.sh makes them)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from world import REPO, load_tool

from minillm.statistics import paired_difference


def comparison(accuracy: dict[str, list[float]], steps: dict[str, int] | None = None) -> dict:
    def cell(values):
        return {"mean": sum(values) / len(values), "std": 0.0, "n_train_seeds": len(values), "n_gen_seeds": 1,
                "per_run": {f"seed{10 * (k + 1)}": {"mean": v} for k, v in enumerate(values)}}
    methods = [{"key": "teacher", "label": "Teacher", "family": "teacher",
                "results": {"tiny": {"accuracy_strict": cell([97.0])}}}]
    methods += [{"key": key, "label": key.upper(), "family": "step-by-step",
                 "budget": {"steps_with_init": (steps or {}).get(key)},
                 "results": {"tiny": {"accuracy_strict": cell(values)}}} for key, values in accuracy.items()]
    return {"accuracy_sets": ["tiny"], "methods": methods, "chance": {"tiny": {"pooled": 41.6667}}}


def test_the_curve_reports_each_arm_per_fraction_with_paired_differences_to_label_only_sft(tmp_path):
    tool = load_tool("data_efficiency")
    small = {"label-sft": [40.0, 44.0, 42.0], "dss": [50.0, 47.0, 56.0], "dss-kd": [41.0, 45.0, 43.0]}
    full = {"label-sft": [70.0, 72.0, 68.0], "dss": [80.0, 79.0, 84.0]}
    for name, data, steps in (("small", small, {"label-sft": 558, "dss": 560, "dss-kd": 562}), ("full", full, None)):
        (tmp_path / f"{name}.json").write_text(json.dumps(comparison(data, steps)))
    out = tmp_path / "curve"
    assert tool.main(["--point", f"1={tmp_path / 'full.json'}", f"0.125={tmp_path / 'small.json'}",
                      "--out", str(out)]) == 0
    summary = json.loads((out / "data-efficiency.json").read_text())
    assert [point["fraction"] for point in summary["points"]] == [0.125, 1.0]  # sorted, the teacher left out
    first = summary["points"][0]
    assert set(first["arms"]) == {"label-sft", "dss", "dss-kd"} and first["arms"]["dss"]["mean"] == pytest.approx(51.0)
    expected = paired_difference(small["dss"], small["label-sft"])
    assert first["versus_label_sft"]["dss"]["mean_difference"] == pytest.approx(9.0)
    assert first["versus_label_sft"]["dss"]["p_value"] == pytest.approx(expected["p_value"])
    # Holm over the two arms at this fraction: the smaller p doubled, the larger kept (monotone)
    p = sorted(first["versus_label_sft"][key]["p_value"] for key in ("dss", "dss-kd"))
    assert sorted(first["versus_label_sft"][key]["p_holm"] for key in ("dss", "dss-kd")) == pytest.approx(
        [min(1.0, 2 * p[0]), max(min(1.0, 2 * p[0]), p[1])])
    table = (out / "data-efficiency.md").read_text()
    assert "| DSS | 51.0 ± " in table and "| DSS-KD |" in table and "| chance (uniform over the animals named) | 41.7 | 41.7 |" in table
    assert "| DSS-KD | 43.0 ± " in table and table.count("(n=3)") == 5 and "| – |" in table  # no DSS-KD at 1
    assert (out / "data_efficiency.png").stat().st_size > 1000
    # the budget each point held: steps recorded at 0.125, none at 1 (an older report)
    assert "| DSS | 560 | – |" in table and "| DSS-KD | 562 | – |" in table and "| LABEL-SFT | 558 | – |" in table
    assert first["arms"]["dss"]["steps_with_init"] == 560


def test_an_unreadable_point_is_refused_by_name(tmp_path, capsys):
    tool = load_tool("data_efficiency")
    assert tool.main(["--point", f"0.5={tmp_path / 'absent.json'}", "--out", str(tmp_path / "curve")]) == 1
    assert "absent.json" in capsys.readouterr().err and not (tmp_path / "curve").exists()
    assert tool.main(["--point", "half=x.json", "--out", str(tmp_path / "curve")]) == 1
    assert "write FRACTION=FILE" in capsys.readouterr().err
    (tmp_path / "point").mkdir()
    (tmp_path / "point/comparison.json").write_text(json.dumps(comparison({"dss": [50.0, 51.0]})))
    (tmp_path / "point/driver.json").write_text(json.dumps({"settings": {"TRAIN_FRACTION": "0.5"}}))
    assert tool.main(["--point", f"0.25={tmp_path / 'point/comparison.json'}", "--out", str(tmp_path / "curve")]) == 1
    assert "trained on TRAIN_FRACTION=0.5" in capsys.readouterr().err
    (tmp_path / "point/comparison.json").write_text(json.dumps({"accuracy_sets": ["tiny"]}))
    assert tool.main(["--point", f"0.5={tmp_path / 'point/comparison.json'}", "--out", str(tmp_path / "curve")]) == 1
    assert "not a comparison.json" in capsys.readouterr().err and not (tmp_path / "curve").exists()


def test_the_script_runs_the_driver_once_per_fraction_and_keeps_each_report(tmp_path):
    """scripts/dss/run_data_efficiency.sh with a stand-in driver that writes a report from its
    TRAIN_FRACTION: one driver run per fraction, each report kept, the curve over all of them."""
    base = tmp_path / "repo"
    (base / "scripts/dss").mkdir(parents=True)
    (base / "tools").mkdir()
    shutil.copy(REPO / "scripts/dss/run_data_efficiency.sh", base / "scripts/dss/")
    (base / "tools/data_efficiency.py").symlink_to(REPO / "tools/data_efficiency.py")
    accuracy = json.dumps(comparison({"label-sft": [40.0, 44.0, 42.0], "dss": [50.0, 47.0, 56.0]}))
    (base / "scripts/run_comparison.sh").write_text(
        '#!/usr/bin/env bash\nset -eu\n[[ -z ${OUT+set} ]] || { echo "OUT exported" >&2; exit 3; }\n'  # the driver refuses it
        'echo "$TRAIN_FRACTION $METHODS $TRAIN_SEEDS" >> "$WORK/calls"\n'
        f"mkdir -p \"$RESULTS\"\necho '{accuracy}' > \"$RESULTS/comparison.json\"\n"
        'echo "fraction $TRAIN_FRACTION" > "$RESULTS/comparison.md"\n'
        'echo "{\\"settings\\": {\\"TRAIN_FRACTION\\": \\"$TRAIN_FRACTION\\"}}" > "$RESULTS/driver.json"\n')
    ours = ("METHODS", "TRAIN_SEEDS", "TRAIN_FRACTION", "PRESET", "RESULTS", "OUT", "FRACTIONS")
    env = {**{k: v for k, v in os.environ.items() if k not in ours}, "WORK": str(tmp_path / "work"),
           "FRACTIONS": "0.25 1", "PYTHONPATH": str(REPO), "OUT": str(tmp_path / "curve")}
    (tmp_path / "work").mkdir()
    result = subprocess.run(["bash", str(base / "scripts/dss/run_data_efficiency.sh"), str(base)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    calls = (tmp_path / "work/calls").read_text().splitlines()
    assert calls == ["0.25 label-sft dss dss-kd dss-minillm 10 20 30", "1 label-sft dss dss-kd dss-minillm 10 20 30"]
    out = tmp_path / "curve"  # OUT: the script's own, never passed on to the driver
    assert (out / "fraction-0.25/comparison.md").read_text() == "fraction 0.25\n"
    summary = json.loads((out / "data-efficiency.json").read_text())
    assert [point["fraction"] for point in summary["points"]] == [0.25, 1.0]
