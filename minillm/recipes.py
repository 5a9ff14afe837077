"""The MiniLLM paper's GPT-2 recipes (ref §3, §6): the one place each default lives.

`minillm/args.py` takes its flag defaults from here, and `python -m minillm.recipes` prints them as
shell assignments (PAPER_SFT_LR=0.0005 ...) that scripts/lib/common.sh evaluates, so the stage
scripts and the gpt2 preset fall back to these values rather than to copies of them.
"""
from __future__ import annotations

import shlex

import numpy as np

# Token-level training (SFT, KD, SeqKD, the step-by-step students): ref §3.
SFT = {"lr": 5e-4, "epochs": 20, "batch_size": 32, "micro_batch_size": 16, "max_length": 512,
       "max_prompt_length": 256}
# MiniLLM's init: the student's SFT, of which MiniLLM takes the lowest-validation-loss checkpoint.
INIT = {"epochs": 3}
# The GPT-2 XL teacher's SFT, and the two-task DSS teacher trained on from it.
TEACHER = {"lr": 5e-5, "epochs": 10, "micro_batch_size": 2}
DSS_TEACHER = {"lr": 5e-5, "epochs": 3, "micro_batch_size": 2}
# MiniLLM (ref §6): batch_size is the GLOBAL mini-batch of rollouts per optimizer step.
MINILLM = {"lr": 5e-6, "lr_scheduler": "constant", "warmup_steps": 100, "total_steps": 5000, "batch_size": 64,
           "micro_batch_size": 8, "num_rollouts": 256, "ppo_epochs": 4, "rollout_batch_size": 32,
           "teacher_mix_alpha": 0.2, "adam_betas": (0.9, 0.95), "weight_decay": 1e-6, "dropout": 0.0,
           "eval_interval": 100}
RECIPES = {"sft": SFT, "init": INIT, "teacher": TEACHER, "dss_teacher": DSS_TEACHER, "minillm": MINILLM}


def shell_word(value) -> str:
    """A value as the recipes write it: small floats in scientific form (5e-4, not 0.0005, so that
    logs and command lines read like the paper), a tuple as one space-separated word."""
    if isinstance(value, tuple):
        return shlex.quote(" ".join(shell_word(item) for item in value))
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        return np.format_float_scientific(value, trim="-", exp_digits=1)  # shortest exact form
    return shlex.quote(str(value))


def shell_values() -> dict[str, str]:
    """PAPER_<RECIPE>_<KEY> → its value as a shell word."""
    return {f"PAPER_{recipe.upper()}_{key.upper()}": shell_word(value)
            for recipe, values in RECIPES.items() for key, value in values.items()}


if __name__ == "__main__":
    print("\n".join(f"{name}={value}" for name, value in shell_values().items()))
