"""Issue 17, your own models and data: the driver's knobs (METHODS, MAX_TRAIN_ROWS, MAX_EVAL_ROWS,
EXTRA_ARGS refused), its checks before the first stage (tools/preflight.py) and after each
processing stage, the custom preset's announced defaults and its README table, and the README's
CPU recipe end to end at a minimal size on the real dolly sample.

The driver tests run scripts/run_comparison.sh with a stand-in `python` that records each stage's
command line instead of running it (a dry run: bash only, a second or two each)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from world import REPO, SHARED_DATA, load_tool

preflight = load_tool("preflight")
cap_rows = load_tool("cap_rows")
DOLLY, GPT2_TOKENIZER = SHARED_DATA / "minillm-data", SHARED_DATA / "tokenizers" / "gpt2"
needs_shared = pytest.mark.skipif(not (DOLLY / "dolly" / "raw.jsonl").is_file() or not GPT2_TOKENIZER.is_dir(),
                                  reason="../shared/data absent: no dolly sample or GPT-2 tokenizer")
# Records `python -m minillm.experiments.stages ... -- COMMAND` as one JSON line (name, command) and runs nothing.
STAND_IN_PYTHON = """#!/usr/bin/env bash
[[ $1 == -m && $2 == minillm.recipes ]] && exec "$REAL_PYTHON" "$@"  # the recipes every script reads
if [[ $1 == -m && $2 == minillm.experiments.stages ]]; then
  exec "$REAL_PYTHON" -c '
import json, os, sys
args = sys.argv[1:]
with open(os.environ["DRY_LOG"], "a") as log:
    print(json.dumps({"name": args[args.index("--name") + 1], "command": args[args.index("--") + 1:]}), file=log)
' "${@:3}"
fi
exit 0
"""


def dry_run(tmp_path: Path, **variables: str) -> tuple[subprocess.CompletedProcess, dict[str, list[str]]]:
    """The driver's output and {stage name: its command line}, nothing run."""
    bin_dir, log = tmp_path / "bin", tmp_path / "stages.jsonl"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").write_text(STAND_IN_PYTHON)
    (bin_dir / "python").chmod(0o755)
    log.unlink(missing_ok=True)
    env = {**{k: v for k, v in os.environ.items() if k not in ("EXTRA_ARGS", "METHODS")},
           "PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_PYTHON": sys.executable, "DRY_LOG": str(log),
           "WORK": str(tmp_path / "work"), **variables}
    result = subprocess.run(["bash", "scripts/run_comparison.sh", str(REPO)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    stages = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return result, {stage["name"]: stage["command"] for stage in stages}


def test_methods_run_only_the_stages_their_arms_need(tmp_path):
    result, stages = dry_run(tmp_path, METHODS="minillm")
    assert result.returncode == 0, result.stderr
    assert "METHODS: minillm starts from the sft student, so sft runs too" in result.stdout
    assert {"process", "process-pretrain", "teacher", "sft-seed10", "minillm-seed10", "eval-minillm-seed10",
            "eval-sft-seed10", "eval-teacher-seed10", "eval-untrained-init"} <= set(stages)
    assert not [name for name in stages if re.match(r"(seqkd|dss|kd-|sft-continued|eval-dss)", name)], sorted(stages)
    result, _ = dry_run(tmp_path, METHODS="sft gdk")
    assert result.returncode == 1 and "METHODS names 'gdk'; choose from: sft kd seqkd" in result.stderr


def test_the_newer_on_policy_arms_run_with_methods_all_from_the_sft_student(tmp_path):
    _, default = dry_run(tmp_path)
    assert not {"opd-seed10", "gkd-seed10", "distillm-seed10"} & set(default)
    _, stages = dry_run(tmp_path, METHODS="all")
    for method, script in (("opd", "scripts/opd/opd_base.sh"), ("gkd", "scripts/gkd/gkd_base.sh"),
                           ("distillm", "scripts/distillm/distillm_base.sh")):
        command = stages[f"{method}-seed10"]
        assert script in command and any(arg.startswith("INIT_PATH=") and arg.endswith("runs/sft/seed10")
                                         for arg in command), command
        assert any(arg.startswith("PTX_DATA_DIR=") for arg in command)  # the control arm's corpus too
        assert f"eval-{method}-seed10" in stages
    # their control arm: the same recipe variables as theirs
    recipe = {arg for arg in stages["sft-continued-seed10"] if arg.split("=")[0] in ("LR", "TOTAL_STEPS", "BATCH_SIZE")}
    assert recipe <= set(stages["gkd-seed10"]) and recipe <= set(stages["distillm-seed10"])
    # MiniLLM with LMOps' whitening: MiniLLM's stage with that one flag more
    lmops = stages["minillm-lmops-seed10"]
    assert "EXTRA_ARGS=--resume --whiten reference" in lmops and "scripts/minillm/train_base_xl.sh" in lmops
    assert "eval-minillm-lmops-seed10" in stages


def test_row_caps_are_stages_and_command_line_flags_only_when_set(tmp_path):
    _, default = dry_run(tmp_path)
    assert not [name for name in default if name.startswith("cap-")]
    assert not any("--max-eval-rows" in " ".join(command) for command in default.values())
    _, capped = dry_run(tmp_path, MAX_TRAIN_ROWS="40", MAX_EVAL_ROWS="5")
    work = tmp_path / "work"
    assert capped["cap-train-rows"][-6:] == ["--keep-first", "200", "--max-rows", "40", "--out",
                                             f"{work}/results/tiny/data/train-rows/raw.jsonl"]
    assert "--max-rows" in capped["cap-dss-rows"]  # the dataset's rationale rows, which the DSS teacher writes for
    # what the teachers write for follows the cap: the SeqKD answers and the DSS teacher's data
    assert f"DATA_DIR={work}/results/tiny/data/train-rows" in capped["seqkd-data"]
    assert f"INPUT={work}/results/tiny/data/dss-capped/raw.jsonl" in capped["dss-teacher-data"]
    assert "EXTRA_ARGS=--max-eval-rows 5" in capped["eval-sft-seed10"]  # on the command line: fingerprinted
    # everything else is the default run's command, so results made without the caps are not reused
    changed = {name for name in default if default[name] != capped.get(name)}
    assert "teacher" not in changed and {"process", "eval-teacher-seed10"} <= changed


def test_an_exported_extra_args_is_refused_before_any_stage(tmp_path):
    result, stages = dry_run(tmp_path, EXTRA_ARGS="--max-eval-rows 50")
    assert result.returncode == 1 and not stages
    assert "EXTRA_ARGS='--max-eval-rows 50' is exported" in result.stderr and "MAX_EVAL_ROWS" in result.stderr


def test_the_custom_preset_announces_what_it_takes_from_gpt2(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.jsonl").write_text("")
    result, _ = dry_run(tmp_path, PRESET="custom", RAW_DIR=str(tmp_path / "data"), EVAL_DATA_ROOT=str(tmp_path),
                        EVAL_SETS="dolly", TEACHER_INIT=str(tmp_path), STUDENT_INIT=str(tmp_path),
                        MINILLM_WARMUP="0", METHODS="sft")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("preset custom: from"))
    for inherited in ("TEACHER_MICRO_BATCH=2", "WORKERS=8", "DSS_TEACHER_EPOCHS=3", "FEWSHOT_PROMPT_LENGTH=768",
                      "DS_CONFIG="):
        assert inherited in line, inherited
    assert "MINILLM_WARMUP" not in line  # set by the user: not inherited


def test_readme_table_lists_every_variable_the_custom_preset_reads():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own models and data")[1].split("\n## ")[0]
    custom = (REPO / "scripts/presets/custom.sh").read_text()
    inherited = re.search(r"FROM_GPT2=\(([^)]*)\)", custom).group(1).split()
    own = re.findall(r"^(\w+)=\$\{\1:", custom, flags=re.MULTILINE)
    driver = ["PRESET", "METHODS", "MAX_TRAIN_ROWS", "MAX_EVAL_ROWS", "MAX_RATIONALE_FAILURE_RATE", "TRAIN_SEEDS",
              "KD_LOSSES", "PTX_DATA_DIR", "STUDENT_INIT_PER_SEED"]
    missing = [name for name in inherited + own + driver if f"| `{name}` |" not in section]
    assert inherited and own and not missing, missing


# ---------------------------------------------------------------- tools/preflight.py

def model_folder(path: Path, tokenizer_dir: Path, n_positions: int) -> Path:
    shutil.copytree(tokenizer_dir, path)
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": n_positions, "vocab_size": 400,
                                                  "n_embd": 8, "n_layer": 1, "n_head": 1}))
    return path


def check(tmp_path: Path, tokenizer_dir: Path, *extra: str, teacher_positions: int = 512) -> int:
    """tools/preflight.py settings on a teacher and a student folder (made here unless they exist)."""
    teacher = tmp_path / "teacher"
    if not teacher.exists():
        model_folder(teacher, tokenizer_dir, teacher_positions)
        model_folder(tmp_path / "student", tokenizer_dir, 512)
    return preflight.main(["settings", "--teacher", str(teacher), "--student", str(tmp_path / "student"),
                           "--tokenizer", str(tokenizer_dir), "--max-length", "256", "--max-prompt-length", "128",
                           "--batch-size", "16", "--record", str(tmp_path / "driver.json"), *extra])


def test_preflight_refuses_prompts_longer_than_the_teachers_positions(tmp_path, tiny_tokenizer_dir, capsys):
    status = check(tmp_path, tiny_tokenizer_dir, "--fewshot-prompt-length", "768", teacher_positions=256)
    error = capsys.readouterr().err
    assert status == 1 and not (tmp_path / "driver.json").exists()
    assert (f"FEWSHOT_PROMPT_LENGTH=768 + 128 new tokens (MAX_LENGTH − MAX_PROMPT_LENGTH) = 896 tokens > the "
            f"teacher's 256 positions (TEACHER_INIT={tmp_path / 'teacher'}); lower FEWSHOT_PROMPT_LENGTH") in error
    assert "MAX_PROMPT_LENGTH=128 + 16 (task prefix) + 128 new tokens" in error and "lower MAX_LENGTH" in error


def test_preflight_refuses_a_learning_rate_that_makes_a_stage_a_no_op(tmp_path, tiny_tokenizer_dir, capsys):
    status = check(tmp_path, tiny_tokenizer_dir, "--lr", "TEACHER_LR=5e-5", "MINILLM_LR=0", "--warmup", "100",
                      "--steps", "4")
    error = capsys.readouterr().err
    assert status == 1
    assert "MINILLM_LR=0: the stages it drives would not change their model" in error
    assert "MINILLM_WARMUP=100 ≥ MINILLM_STEPS=4" in error and "lower MINILLM_WARMUP" in error
    assert "TEACHER_LR" not in error


def test_preflight_refuses_a_teacher_with_another_tokenizer(tmp_path, tiny_tokenizer_dir, capsys):
    from transformers import AutoTokenizer
    other = tmp_path / "other-tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tokenizer.add_tokens(["<a-token-the-students-lack>"])
    tokenizer.save_pretrained(other)
    model_folder(tmp_path / "teacher", other, 512)
    model_folder(tmp_path / "student", tiny_tokenizer_dir, 512)
    status = check(tmp_path, tiny_tokenizer_dir)
    error = capsys.readouterr().err
    assert status == 1 and f"TEACHER_INIT={tmp_path / 'teacher'} and TOKENIZER={tiny_tokenizer_dir} do not share" in error
    assert "STUDENT_INIT" not in error


def test_preflight_records_the_plan_when_every_check_passes(tmp_path, tiny_tokenizer_dir):
    status = check(tmp_path, tiny_tokenizer_dir, "--lr", "TEACHER_LR=1e-3", "--warmup", "0", "--steps", "8",
                      "--methods", "sft", "--all-methods", "sft kd", "--instruction-data", "data/dolly",
                      "--max-eval-rows", "50", "--teacher-cache-top-k", "64")
    assert status == 0
    plan = json.loads((tmp_path / "driver.json").read_text())
    assert plan["methods_not_run"] == ["kd"] and plan["data_sources"]["instruction"] == "data/dolly"
    assert plan["max_eval_rows"] == 50 and plan["max_train_rows"] is None and plan["teacher_cache_top_k"] == 64


def test_too_few_training_items_name_the_stage_and_its_input(tmp_path, capsys):
    processed = tmp_path / "processed" / "full" / "label" / "custom"
    processed.mkdir(parents=True)
    (processed / "data_manifest.json").write_text(json.dumps({"splits": {"valid": 50, "train": 0}}))
    status = preflight.main(["items", "--data", str(processed), "--batch-size", "16", "--stage", "process-dss",
                             "--made-by", "results/data/dss/raw.jsonl, written by stage dss-rows"])
    error = capsys.readouterr().err
    assert status == 1
    assert (f"stage process-dss made 0 training items in {processed}, fewer than one global batch (BATCH_SIZE=16); "
            "its input: results/data/dss/raw.jsonl, written by stage dss-rows") in error


def test_cap_rows_keeps_the_validation_rows_and_the_first_training_rows(tmp_path, capsys):
    source = tmp_path / "raw.jsonl"
    source.write_text("".join(f'{{"id": {i}}}\n' for i in range(10)) + "\n")
    assert cap_rows.main(["--input", str(source), "--keep-first", "3", "--max-rows", "4",
                          "--out", str(tmp_path / "out" / "raw.jsonl")]) == 0
    assert [json.loads(line)["id"] for line in (tmp_path / "out" / "raw.jsonl").read_text().splitlines()] == list(range(7))
    assert cap_rows.main(["--input", str(source), "--keep-first", "10", "--max-rows", "4",
                          "--out", str(tmp_path / "none.jsonl")]) == 1
    assert "none left for training after the first 10 (DEV_NUM" in capsys.readouterr().err


# ---------------------------------------------------------------- the README's CPU recipe, minimal

@needs_shared
@pytest.mark.slow
def test_readme_cpu_recipe_at_a_minimal_size(tmp_path):
    """The README's CPU recipe for the custom preset (models by tools/make_random_model.py from a
    GPT-2 config and the official GPT-2 tokenizer, the shared dolly sample and eval set), shrunk:
    one-layer models, 16 training questions, 4 eval rows, one generation seed, METHODS=sft."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("EXTRA_ARGS", "METHODS")},
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    config = tmp_path / "gpt2-tiny.json"
    config.write_text(json.dumps({"model_type": "gpt2", "n_positions": 128, "n_embd": 32, "n_layer": 1, "n_head": 2}))
    for role, seed in (("teacher", "1"), ("student", "2")):
        subprocess.run([sys.executable, "tools/make_random_model.py", "--config", str(config), "--tokenizer",
                        str(GPT2_TOKENIZER), "--seed", seed, "--out", str(tmp_path / role)],
                       cwd=REPO, env=env, check=True, capture_output=True)
    recipe = {"PRESET": "custom", "WORK": str(tmp_path), "RAW_DIR": str(DOLLY / "dolly"), "EVAL_DATA_ROOT": str(DOLLY),
              "EVAL_SETS": "dolly", "TEACHER_INIT": str(tmp_path / "teacher"), "STUDENT_INIT": str(tmp_path / "student"),
              "TOKENIZER": str(GPT2_TOKENIZER), "METHODS": "sft", "DEV_NUM": "8", "MAX_TRAIN_ROWS": "16",
              "MAX_EVAL_ROWS": "4", "EVAL_SEEDS": "10", "DS_CONFIG": "configs/deepspeed/zero1_fp32.json",
              "MAX_LENGTH": "64", "MAX_PROMPT_LENGTH": "48", "BATCH_SIZE": "8", "MICRO_BATCH_SIZE": "8",
              "TEACHER_MICRO_BATCH": "8", "TEACHER_EPOCHS": "1", "STUDENT_EPOCHS": "1", "EVAL_GEN_NUM": "4",
              "WORKERS": "1", "MINILLM_WARMUP": "0"}
    result = subprocess.run(["bash", "scripts/run_comparison.sh", str(REPO)], cwd=REPO, env={**env, **recipe},
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    results = tmp_path / "results" / "custom"
    manifest = json.loads((tmp_path / "processed_data/custom/full/custom/data_manifest.json").read_text())
    capped = (results / "data" / "train-rows" / "raw.jsonl").read_text().splitlines()
    assert len(capped) == 8 + 16  # DEV_NUM validation rows, then MAX_TRAIN_ROWS training questions
    assert 8 <= manifest["splits"]["train"] <= 16  # processing drops the rows longer than MAX_LENGTH
    report = (results / "comparison.md").read_text()
    assert "Rows scored: dolly 4 (the first MAX_EVAL_ROWS=4 of each set). Generation seeds: 10." in report
    assert f"Training data: Teacher, SFT: {DOLLY / 'dolly'} (first 16 training rows)." in report
    assert "Not run (the driver's METHODS left them out): `kd`, `seqkd`, `minillm`" in report
    assert "| SFT | baseline |" in report and not (results / "runs" / "kd-forward_kl").exists()


@pytest.mark.parametrize("ptx", ["0", "1"])
def test_the_control_arm_script_runs_with_and_without_a_corpus(tmp_path, ptx):
    """scripts/sft/sft_continued.sh (set -euo pipefail) with the stand-in python: it reaches the
    launch, with the corpus term's flags only when PTX=1 (a custom preset has no corpus)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text('#!/usr/bin/env bash\n'
                                    '[[ $2 == minillm.recipes ]] && exec "$REAL_PYTHON" "$@"\n'
                                    'if [[ $2 == minillm.train.checkpoint ]]; then echo "$4"; exit 0; fi\n'  # resolve RUN
                                    '[[ $1 == train_kd.py ]] && echo "$@" > "$LAUNCHED"\nexit 0\n')
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_PYTHON": sys.executable,
           "LAUNCHED": str(tmp_path / "launched"), "PTX": ptx,
           "OMP_NUM_THREADS": "1", "INIT_PATH": str(tmp_path / "init"), "SAVE_PATH": str(tmp_path / "run")}
    result = subprocess.run(["bash", "scripts/sft/sft_continued.sh", str(REPO)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    launched = (tmp_path / "launched").read_text()
    assert "--kd-ratio 0" in launched and ("--ptx-kd-ratio 0.5" in launched) == (ptx == "1")
    # MiniLLM's recipe from minillm/recipes.py, through common.sh's PAPER_* variables
    assert "--lr 5e-6 " in launched and "--adam-betas 0.9 0.95 --weight-decay 1e-6 --dropout 0.0" in launched


def test_the_stories_preset_runs_its_own_pipeline_on_the_drivers_stages(tmp_path):
    llama2c = tmp_path / "stories260K"
    llama2c.mkdir()
    (llama2c / "stories260K.bin").write_bytes(b"")
    result, stages = dry_run(tmp_path, PRESET="stories", LLAMA2C_DIR=str(llama2c), STEPS="40")
    assert result.returncode == 0, result.stderr
    assert list(stages) == ["teacher", "student-init", "data", "seqkd", "kd_forward_kl", "kd_reverse_kl", "minillm",
                            "compare"]
    results = tmp_path / "work" / "results" / "stories"
    assert f"INIT_PATH={results}/seqkd/20" in stages["minillm"] and "TOTAL_STEPS=20" in stages["minillm"]
    for student in ("seqkd", "kd_forward_kl", "kd_reverse_kl"):  # one budget, one init, the stage's own knobs on its line
        assert "EXTRA_ARGS=--total-steps 40 --resume" in stages[student] and "LR=3e-3" in stages[student]
    assert f"minillm={results}/minillm" in stages["compare"]
    result, stages = dry_run(tmp_path, PRESET="stories", LLAMA2C_DIR=str(tmp_path / "absent"))
    assert result.returncode == 1 and not stages and "needs llama2.c's stories260K" in result.stderr
    result, stages = dry_run(tmp_path, PRESET="stories", LLAMA2C_DIR=str(llama2c), MAX_EVAL_ROWS="5")
    assert result.returncode == 1 and not stages and "MAX_EVAL_ROWS does not apply to the stories preset" in result.stderr


def test_teacher_cache_top_k_gives_kd_and_dss_kd_a_cache_stage_each_and_changes_nothing_else(tmp_path):
    _, live = dry_run(tmp_path, METHODS="kd dss-kd")
    _, cached = dry_run(tmp_path, METHODS="kd dss-kd", TEACHER_CACHE_TOP_K="64")
    caches = tmp_path / "work" / "results" / "tiny" / "teacher-cache"
    assert set(cached) - set(live) == {"cache-teacher", "cache-dss-teacher-label", "cache-dss-teacher-rationale"}
    assert "TOP_K=64" in cached["cache-teacher"] and f"CACHE_DIR={caches}/teacher" in cached["cache-teacher"]
    assert f"KD_ARGS=--teacher-cache {caches}/teacher" in cached["kd-forward_kl-seed10"]
    assert (f"KD_ARGS=--teacher-cache {caches}/dss-teacher-label {caches}/dss-teacher-rationale"
            in cached["dss-kd-seed10"])
    assert not any(arg.startswith("KD_ARGS=") for arg in live["kd-forward_kl-seed10"] + live["dss-kd-seed10"])
    assert {name for name in live if live[name] != cached[name]} == {"kd-forward_kl-seed10", "dss-kd-seed10"}
