"""minillm/recipes.py, the one home of the paper's recipe defaults: what the scripts read from it
(scripts/lib/common.sh) is the same number args.py uses, written as the paper writes it."""
from __future__ import annotations

import os
import shlex
import subprocess

from world import REPO

from minillm.recipes import RECIPES, shell_values


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
