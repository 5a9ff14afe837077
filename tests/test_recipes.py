"""minillm/recipes.py, the one home of the paper's recipe defaults: what the scripts read from it
(scripts/lib/common.sh) is the same number args.py uses, written as the paper writes it."""
from __future__ import annotations

import os
import shlex
import subprocess

import pytest
from world import REPO

from minillm import args as cli
from minillm.recipes import RECIPES, REFERENCE_RECIPES, reference_flags, shell_values


def test_every_value_reaches_the_shell_unchanged():
    words = shell_values()
    for recipe, values in RECIPES.items():
        for key, value in values.items():
            (word,) = shlex.split(words[f"PAPER_{recipe.upper()}_{key.upper()}"])
            parsed = (tuple(float(item) for item in word.split()) if isinstance(value, tuple)
                      else word == "1" if isinstance(value, bool) else type(value)(word))
            assert parsed == value, (recipe, key, word)
    assert words["PAPER_SFT_LR"] == "5e-4" and words["PAPER_MINILLM_WEIGHT_DECAY"] == "1e-6"


def test_common_sh_gives_the_scripts_the_recipes_and_stops_when_it_cannot(tmp_path):
    script = 'source scripts/lib/common.sh "$1"; echo "$PAPER_SFT_LR|$PAPER_MINILLM_ADAM_BETAS"'
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    read = subprocess.run(["bash", "-c", script, "bash", str(REPO)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert read.returncode == 0 and read.stdout.strip().endswith("5e-4|0.9 0.95"), read.stderr
    (tmp_path / "minillm").mkdir()
    (tmp_path / "minillm" / "__init__.py").write_text("")  # a package of its own, ahead of any installed one
    (tmp_path / "minillm" / "recipes.py").write_text("raise SystemExit(3)\n")  # a BASE_PATH whose recipes fail
    failed = subprocess.run(["bash", "-c", script.replace("scripts/lib", f"{REPO}/scripts/lib"), "bash", str(tmp_path)],
                            cwd=tmp_path, env={**env, "PYTHONPATH": ""}, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "error: cannot read the recipes" in failed.stderr and "|" not in failed.stdout


# The tiny preset's values for each reference recipe's scaled flags (scripts/presets/tiny.sh: STUDENT_LR,
# STUDENT_EPOCHS, BATCH_SIZE, MAX_LENGTH − MAX_PROMPT_LENGTH, MINILLM_*; the rules are the recipes' `scaled` texts).
TINY_SCALED = {
    "distillm-ref": {"lr": 1.75e-3, "batch_size": 32, "epochs": 6},
    "gkd-ref": {"response_max_new_tokens": 48, "lr": 5e-4, "warmup_steps": 0, "total_steps": 64, "batch_size": 32,
                "eval_interval": 32},
    "opd-ref": {"lr": 5e-4, "warmup_steps": 0, "total_steps": 64, "batch_size": 32, "eval_interval": 32},
    "abkd-ref": {"lr": 1.75e-3, "batch_size": 32, "epochs": 6},
}


@pytest.mark.parametrize("key", sorted(REFERENCE_RECIPES))
@pytest.mark.parametrize("scale", ["authors", "tiny"])
def test_every_reference_recipe_is_a_valid_command_of_its_entrypoint(key, scale):
    """Each reference recipe's flags, at the authors' scale and at the tiny preset's, parse and pass
    the entrypoint's validation, and set what the recipe says (the authors' value where not scaled)."""
    import train_kd
    import train_minillm

    recipe = REFERENCE_RECIPES[key]
    lengths = ["--max-length", "512", "--max-prompt-length", "256"] if scale == "authors" else \
        ["--max-length", "128", "--max-prompt-length", "80"]
    base = ["--model-path", "m", "--teacher-model-path", "t", "--data-dir", "d", "--save", "s",
            "--deepspeed-config", "configs/deepspeed/zero1_fp32.json", *lengths]
    if recipe.uses_corpus:
        base += ["--ptx-data-dir", "corpus"]
    preset = TINY_SCALED[key] if scale == "tiny" else None
    argv = base + reference_flags(key, preset)
    parser = train_kd.parser() if recipe.entrypoint == "train_kd.py" else train_minillm.parser(argv)
    args = cli.validate(parser.parse_args(argv))
    for dest, value in {**recipe.flags, **(preset or {})}.items():
        if dest == "num_rollouts":  # 0 = one optimizer step per collection: --batch-size rollouts
            assert args.num_rollouts == args.batch_size
        else:
            got = getattr(args, dest)
            assert (tuple(got) if isinstance(got, list) else got) == value, dest
    if key in ("distillm-ref", "abkd-ref"):
        assert args.dropout is None and args.ptx_kd_ratio == 0  # the model's dropout kept; corpus CE alone
    with pytest.raises(ValueError, match="needs values for exactly"):
        reference_flags(key, {"lr": 1e-3})
