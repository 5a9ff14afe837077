"""Your own models and data: the driver's checks before the first stage
(minillm/experiments/preflight.py) and after each processing stage, MAX_TRAIN_ROWS's tool, the
control arm's script with and without a corpus, and the README's CPU recipe end to end at a
minimal size on the real dolly sample."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_driver import without_paths
from world import REPO, SHARED_DATA, load_tool

from minillm.experiments import preflight
from minillm.experiments.plan import build_plan, enough_items
from minillm.experiments.settings import load_settings

cap_rows = load_tool("cap_rows")
DOLLY, GPT2_TOKENIZER = SHARED_DATA / "minillm-data", SHARED_DATA / "tokenizers" / "gpt2"
needs_shared = pytest.mark.skipif(not (DOLLY / "dolly" / "raw.jsonl").is_file() or not GPT2_TOKENIZER.is_dir(),
                                  reason="../shared/data absent: no dolly sample or GPT-2 tokenizer")


# ---------------------------------------------------------------- tools/preflight.py

def model_folder(path: Path, tokenizer_dir: Path, n_positions: int) -> Path:
    shutil.copytree(tokenizer_dir, path)
    (path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_positions": n_positions, "vocab_size": 400,
                                                  "n_embd": 8, "n_layer": 1, "n_head": 1}))
    return path


def settings_for(tmp_path: Path, tokenizer_dir: Path, teacher_positions: int = 512, **environ: str):
    """A custom preset whose teacher and student folders hold `tokenizer_dir`'s tokenizer."""
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    if not teacher.exists():
        model_folder(teacher, tokenizer_dir, teacher_positions)
        model_folder(student, tokenizer_dir, 512)
    settings = load_settings("custom", REPO, {"WORK": str(tmp_path), "RAW_DIR": str(tmp_path), "EVAL_DATA_ROOT":
                             str(tmp_path), "EVAL_SETS": "dolly", "TEACHER_INIT": str(teacher), "STUDENT_INIT":
                             str(student), "TOKENIZER": str(tokenizer_dir), "MAX_LENGTH": "256",
                             "MAX_PROMPT_LENGTH": "128", "BATCH_SIZE": "16", **environ})
    return settings, build_plan(settings)


def test_preflight_refuses_prompts_longer_than_the_teachers_positions(tmp_path, tiny_tokenizer_dir):
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, teacher_positions=256, METHODS="sft dss")
    problems = "\n".join(preflight.model_problems(settings, plan))
    assert (f"FEWSHOT_PROMPT_LENGTH=768 + 128 new tokens (MAX_LENGTH − MAX_PROMPT_LENGTH) = 896 tokens > the "
            f"teacher's 256 positions (TEACHER_INIT={tmp_path / 'teacher'}); lower FEWSHOT_PROMPT_LENGTH") in problems
    assert "MAX_PROMPT_LENGTH=128 + 16 (task prefix) + 128 new tokens" in problems and "lower MAX_LENGTH" in problems
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="sft")  # no step-by-step arm: no few-shot
    assert not [p for p in preflight.model_problems(settings, plan) if "FEWSHOT" in p]


def test_preflight_refuses_a_warm_up_as_long_as_the_on_policy_steps(tmp_path, tiny_tokenizer_dir):
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="minillm", MINILLM_STEPS="4",
                                  MINILLM_LR="1e-3")
    problems = "\n".join(preflight.settings_problems(settings, plan))
    assert "MINILLM_WARMUP=100 ≥ MINILLM_STEPS=4" in problems and "lower MINILLM_WARMUP" in problems
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="sft", MINILLM_STEPS="4")
    assert not [p for p in preflight.settings_problems(settings, plan) if "MINILLM_WARMUP" in p]


def test_a_teacher_with_another_tokenizer_runs_the_arms_that_work_across_tokenizers_only(tmp_path,
                                                                                         tiny_tokenizer_dir):
    """Without TEACHER_TOKENIZER the mismatch is refused, naming the way; with it, the teacher trains
    on data in its own tokens, the SeqKD answers are processed in the students', the cross-tokenizer
    arms get their distance, and an arm that compares tokens one by one is refused, naming the others."""
    from transformers import AutoTokenizer
    other = tmp_path / "other-tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tokenizer.add_tokens(["<a-token-the-students-lack>"])
    tokenizer.save_pretrained(other)
    config = model_folder(tmp_path / "teacher", other, 512) / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "vocab_size": len(tokenizer)}))
    model_folder(tmp_path / "student", tiny_tokenizer_dir, 512)
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="sft")
    problems = "\n".join(preflight.model_problems(settings, plan))
    assert f"TEACHER_INIT={tmp_path / 'teacher'} and TOKENIZER={tiny_tokenizer_dir} do not share" in problems
    assert f"TEACHER_TOKENIZER={tmp_path / 'teacher'} and METHODS from the arms that work across" in problems
    assert "STUDENT_INIT" not in problems

    across = {"TEACHER_TOKENIZER": str(other), "PTX_TEXT": "", "EVAL_SEEDS": "10"}
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="sft seqkd uld aligned-kd aligned-onpolicy",
                                  **across)
    assert not [p for p in preflight.model_problems(settings, plan) if "tokenizer" in p.lower()]
    processed = settings.processed
    teacher = plan.stage("teacher")
    assert teacher.env["DATA_DIR"] == f"{processed}/teacher-tokenizer/full/custom"
    assert plan.stage("process-teacher").env["MODEL_PATH"] == str(other)
    assert plan.stage("process").env["MODEL_PATH"] == str(tiny_tokenizer_dir)
    assert plan.stage("seqkd-data").env["TOKENIZER_PATH"] == str(tiny_tokenizer_dir)
    for arm, distance in (("uld", "uld"), ("aligned-kd", "aligned"), ("aligned-onpolicy", "aligned")):
        env = plan.stage(f"{arm}-seed10").env
        assert env["CROSS_TOKENIZER"] == distance and env["DATA_DIR"] == f"{processed}/full/custom", arm
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="dss", DSS_RATIONALES="dataset",
                                  DSS_SOURCE="synthetic", DSS_SOURCE_INPUT=str(tmp_path), **across)
    assert plan.stage("process-dss-cot").env["MODEL_PATH"] == str(other)  # the two-task DSS teacher's data
    assert plan.stage("process-dss-teacher").env["MODEL_PATH"] == str(tiny_tokenizer_dir)  # what it writes
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="sft aligned-onpolicy", **across)
    on_policy = plan.stage("aligned-onpolicy-seed10").env
    assert on_policy["INIT_PATH"].endswith("runs/sft/seed10") and (on_policy["GKD_LAMBDA"], on_policy["KD_RATIO"],
                                                                    on_policy["PTX_KD_RATIO"]) == ("1", "1", "0")
    for methods, refused in (("sft kd", "METHODS kd-forward_kl"), ("sft-continued minillm", "METHODS sft-continued minillm")):
        settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS=methods, **across)
        problems = "\n".join(preflight.model_problems(settings, plan))
        assert f"{refused} compare teacher and student token by token; across tokenizers choose from: " in problems
        assert " uld " in problems and " seqkd " in problems
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="uld", TEACHER_CACHE_TOP_K="8", **across)
    assert "TEACHER_CACHE_TOP_K=8: the cache holds the teacher's scores" in "\n".join(
        preflight.model_problems(settings, plan))


def test_the_driver_distils_across_tokenizers_at_a_toy_size(tmp_path, world):
    """The custom preset with a teacher whose tokenizer is its own (a BPE of 600 tokens on the same
    text; the students keep the world's 800): the teacher trains on data in its tokens, SeqKD's
    answers are processed in the students', and a black-box (SeqKD) and a white-box cross-tokenizer
    student (ULD; aligned-token KD is the same stage with another distance) reach the table. Then
    the SLURM executor's code path: the ULD student and its evaluation again, one at a time, each a
    submitit job (EXECUTOR=submitit-local, a local process), compute what the local pool computed."""
    make = load_tool("make_tiny_default")
    teacher_tokenizer, teacher = tmp_path / "teacher-tokenizer", tmp_path / "teacher"
    make.train_tokenizer(world.data, teacher_tokenizer, 600, make.N_POSITIONS)
    make.build_model(teacher_tokenizer, teacher, make.TEACHER_SHAPE, make.N_POSITIONS, seed=1)
    env = {**{k: v for k, v in os.environ.items() if k not in ("EXTRA_ARGS", "METHODS", "JOBS")},
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    recipe = {"PRESET": "custom", "WORK": str(tmp_path), "RAW_DIR": str(world.data),
              "EVAL_DATA_ROOT": str(world.data.parent), "EVAL_SETS": world.data.name, "TEACHER_INIT": str(teacher),
              "STUDENT_INIT": str(world.student), "TEACHER_TOKENIZER": str(teacher_tokenizer),
              "METHODS": "seqkd uld", "DEV_NUM": "40", "MAX_TRAIN_ROWS": "64", "MAX_EVAL_ROWS": "6",
              "EVAL_SEEDS": "10", "DS_CONFIG": "configs/deepspeed/zero1_fp32.json", "MAX_LENGTH": "160",
              "MAX_PROMPT_LENGTH": "96", "BATCH_SIZE": "16", "MICRO_BATCH_SIZE": "16", "TEACHER_MICRO_BATCH": "16",
              "TEACHER_EPOCHS": "1", "STUDENT_EPOCHS": "1", "EVAL_GEN_NUM": "4", "WORKERS": "1", "JOBS": "2",
              "STAGE_THREADS": "1"}
    def drive(**changes: str) -> str:
        result = subprocess.run(["bash", "scripts/run_comparison.sh", str(REPO)], cwd=REPO,
                                env={**env, **recipe, **changes}, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
        return result.stdout

    drive()

    def vocabulary(processed: str) -> int:
        manifest = tmp_path / "processed_data/custom" / processed / "custom/data_manifest.json"
        return json.loads(manifest.read_text())["tokenizer"]["vocab_size"]

    assert (vocabulary("teacher-tokenizer/full"), vocabulary("full"), vocabulary("seqkd/full")) == (600, 800, 800)
    results = tmp_path / "results/custom"
    report = (results / "comparison.md").read_text()
    for label in ("Teacher", "SeqKD", "ULD"):
        assert f"| {label} |" in report, label

    assert not (results / "submitit").exists()
    pooled = json.loads((results / "eval/uld/seed10/summary.json").read_text())
    for output in (results / "runs/uld/seed10", results / "eval/uld/seed10"):  # only they (and the report) rerun
        shutil.rmtree(output)
    again = drive(JOBS="1", EXECUTOR="submitit-local")
    reran = {line.split("]")[0].removeprefix("[stage ") for line in again.splitlines()
             if line.startswith("[stage ") and "skipped" not in line}
    assert {"uld-seed10", "eval-uld-seed10"} <= reran and not {"teacher", "seqkd-seed10"} & reran, reran
    assert list((results / "submitit").rglob("*.pkl")), "no submitit job ran"
    one_at_a_time = json.loads((results / "eval/uld/seed10/summary.json").read_text())
    assert without_paths(one_at_a_time["sets"]) == without_paths(pooled["sets"])


def test_preflight_names_missing_inputs_and_records_the_plan(tmp_path, tiny_tokenizer_dir):
    settings, plan = settings_for(tmp_path, tiny_tokenizer_dir, METHODS="sft", MAX_EVAL_ROWS="50",
                                  TEACHER_CACHE_TOP_K="64")
    problems = preflight.settings_problems(settings, plan)
    assert problems == [f"RAW_DIR: {tmp_path}/raw.jsonl does not exist (preset custom: see the README's paper-scale "
                        f"how-to and 'Your own models and data')",
                        f"EVAL_DATA_ROOT: {tmp_path}/dolly does not exist (preset custom: see the README's "
                        f"paper-scale how-to and 'Your own models and data')"]
    assert plan.record["methods_not_run"][:2] == ["seqkd", "sft-continued"] and "kd" in plan.record["methods_not_run"]
    assert plan.record["max_eval_rows"] == 50 and plan.record["max_train_rows"] is None
    assert plan.record["teacher_cache_top_k"] == 64


def test_too_few_training_items_fail_the_stage_naming_its_input(tmp_path):
    processed = tmp_path / "processed" / "full" / "label" / "custom"
    processed.mkdir(parents=True)
    (processed / "data_manifest.json").write_text(json.dumps({"splits": {"valid": 50, "train": 0}}))
    check = enough_items(processed, 16, "process-dss", "results/data/dss/raw.jsonl, written by stage dss-rows")
    assert check(lambda path: path) == (
        f"stage process-dss made 0 training items in {processed}, fewer than one global batch (BATCH_SIZE=16); "
        "its input: results/data/dss/raw.jsonl, written by stage dss-rows. Look there first (a teacher that writes "
        "no usable rows, DEV_NUM taking every row, MAX_TRAIN_ROWS), then rerun the driver.")
    (processed / "data_manifest.json").write_text(json.dumps({"splits": {"valid": 50, "train": 16}}))
    assert check(lambda path: path) is None


def test_cap_rows_keeps_the_validation_rows_and_the_first_training_rows(tmp_path, capsys):
    source = tmp_path / "raw.jsonl"  # U+2028 inside every row's string, as in GSM8K's raw.jsonl: still one row each
    source.write_text("".join(json.dumps({"id": i, "text": "a\u2028b"}, ensure_ascii=False) + "\n" for i in range(10))
                      + "\n", encoding="utf-8")
    assert cap_rows.main(["--input", str(source), "--keep-first", "3", "--max-rows", "4",
                          "--out", str(tmp_path / "out" / "raw.jsonl")]) == 0
    kept = (tmp_path / "out" / "raw.jsonl").read_text(encoding="utf-8").split("\n")
    assert [json.loads(line)["id"] for line in kept if line] == list(range(7))
    assert "3 validation + 4 training rows (of 7;" in capsys.readouterr().out
    assert cap_rows.main(["--input", str(source), "--keep-first", "10", "--max-rows", "4",
                          "--out", str(tmp_path / "none.jsonl")]) == 1
    assert "none left for training after the first 10 (DEV_NUM" in capsys.readouterr().err


# ---------------------------------------------------------------- the README's CPU recipe, minimal

@needs_shared
@pytest.mark.long
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
    assert "Not run (the driver's METHODS left them out): `seqkd`, `sft-continued`, `minillm`" in report
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
