"""minillm/experiments/settings.py: typed presets, environment overrides parsed and checked before
the first stage, every problem at once and each naming its variable."""
from __future__ import annotations

from dataclasses import fields
import pytest
from world import REPO, load_tool

from minillm.experiments import driver
from minillm.experiments.settings import (
    CUSTOM,
    GPT2,
    PRESETS,
    SettingsError,
    env_name,
    load_settings,
    markdown_table,
    source_of,
)
from minillm.recipes import MINILLM, SFT, TEACHER


def refused(preset: str = "tiny", **environ: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(preset, REPO, {"WORK": "/tmp/w", **environ})
    return caught.value.problems


def test_the_tiny_preset_and_its_overrides(tmp_path):
    settings = load_settings("tiny", REPO, {"WORK": str(tmp_path), "STUDENT_LR": "1e-3", "TRAIN_SEEDS": "10 20 30"})
    assert settings.results == tmp_path / "results/tiny" and settings.raw_dir == tmp_path / "data/tiny"
    assert settings.student_lr == 1e-3 and settings.train_seeds == (10, 20, 30) and settings.stage_threads == 1
    assert source_of(settings, "student_lr") == "environment" and source_of(settings, "teacher_lr") == "preset"
    assert settings.ptx_text == tmp_path / "data/tiny/pretrain.txt"  # a default derived from RAW_DIR
    relative = load_settings("tiny", REPO, {"WORK": "work"})
    assert relative.work == REPO / "work"  # relative paths are the repository's, as the scripts' were


def test_the_gpt2_preset_is_the_papers_recipe_and_custom_inherits_it(tmp_path):
    gpt2 = load_settings("gpt2", REPO, {})
    assert (gpt2.student_lr, gpt2.student_epochs, gpt2.max_length) == (SFT["lr"], SFT["epochs"], SFT["max_length"])
    assert gpt2.teacher_lr == TEACHER["lr"] and gpt2.minillm_steps == MINILLM["total_steps"]
    assert gpt2.eval_no_repeat_ngram == 6 and gpt2.eval_seeds == (10, 20, 30, 40, 50)
    custom = load_settings("custom", REPO, {"RAW_DIR": "d", "EVAL_DATA_ROOT": "e", "EVAL_SETS": "dolly",
                                            "TEACHER_INIT": "t", "STUDENT_INIT": "s"})
    assert custom.tokenizer == REPO / "s" and custom.student_lr == SFT["lr"]
    assert source_of(custom, "student_lr") == "preset gpt2" and source_of(custom, "results") == "preset"
    assert set(CUSTOM) == set(GPT2)


def test_every_bad_value_is_refused_at_once_naming_its_variable():
    problems = refused(TRAIN_SEEDS="ten", EVAL_SEEDS="x", STUDENT_EPOCHS="-1", MAX_EVAL_ROWS="0",
                       TEACHER_CACHE_TOP_K="-5", MINILLM_STEPS="0", STUDENT_LR="fast", LABEL_WEIGHT="1.5",
                       DSS_RATIONALES="palm", STUDENT_INIT_PER_SEED="yes")
    text = "\n".join(problems)
    for expected in ("TRAIN_SEEDS='ten': not an integer", "EVAL_SEEDS='x': not an integer",
                     "STUDENT_EPOCHS='-1': must be > 0", "MAX_EVAL_ROWS='0': must be > 0",
                     "TEACHER_CACHE_TOP_K='-5': must be > 0", "MINILLM_STEPS='0': must be > 0",
                     "STUDENT_LR='fast': not a number", "LABEL_WEIGHT='1.5': must be in [0, 1]",
                     "DSS_RATIONALES='palm': must be one of: dataset teacher-fewshot",
                     "STUDENT_INIT_PER_SEED='yes': must be 0 or 1"):
        assert expected in text, (expected, text)
    assert "separate the values with spaces" in refused(TRAIN_SEEDS="10,20")[0]
    assert "holds a value twice" in refused(TRAIN_SEEDS="10 10")[0]
    assert refused(STUDENT_LR="nan") == ["STUDENT_LR='nan': not a finite number"]


def test_required_settings_and_settings_of_another_preset():
    problems = refused("custom")
    assert {problem.split(":")[0] for problem in problems} == {
        "set RAW_DIR", "set EVAL_DATA_ROOT", "set EVAL_SETS", "set TEACHER_INIT", "set STUDENT_INIT"}
    problems = refused("stories", MAX_EVAL_ROWS="5", TEACHER_CACHE_TOP_K="64")
    assert problems == ["MAX_EVAL_ROWS does not apply to the stories preset: unset it",
                        "TEACHER_CACHE_TOP_K does not apply to the stories preset: unset it"]
    assert refused("nano") == ["PRESET='nano': choose from tiny, gpt2, custom, stories"]


def test_kd_losses_and_methods_are_checked_before_the_first_stage(capsys):
    assert driver.main(["--dry-run"], {"WORK": "/tmp/w", "KD_LOSSES": "bogus_kl", "METHODS": "default"}) == 1
    assert "KD_LOSSES names 'bogus_kl'; choose from: forward_kl" in capsys.readouterr().err
    assert driver.main(["--dry-run"], {"WORK": "/tmp/w", "METHODS": "sft gdk"}) == 1
    assert "METHODS names 'gdk'; choose from: sft seqkd" in capsys.readouterr().err


def test_the_variables_table_documents_every_setting():
    for preset, (cls, defaults) in PRESETS.items():
        table = markdown_table(preset)
        for spec in fields(cls):
            if spec.name not in ("preset", "base_path"):
                assert f"| `{env_name(spec.name)}` |" in table and spec.name in defaults, (preset, spec.name)
    assert "| `STUDENT_LR` | `0.00175` |" in markdown_table("tiny")
    assert "| `RAW_DIR` | `required` |" in markdown_table("custom")


def test_the_documented_tables_are_generated_from_the_code():
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    assert load_tool("write_doc_tables").main(["--check", *map(str, docs)]) == 0
    text = "".join(path.read_text() for path in docs)
    assert all(f"<!-- settings:{preset}:start -->" in text for preset in PRESETS) and "<!-- methods:start -->" in text
