"""Every paper recipe the project runs: the one place each default lives.

The MiniLLM paper's GPT-2 recipes (ref §3, §6) and the recipes the driver's other arms run with
them (word-level KD's mix, step-by-step's task weight, GKD, DistiLLM, on-policy distillation).
`minillm/args.py` takes its flag defaults from here; the driver's presets
(`minillm/experiments/settings.py`) start from these values and override what a preset changes;
and `python -m minillm.recipes` prints them as shell assignments (PAPER_SFT_LR=5e-4 ...) that
scripts/lib/common.sh evaluates, so the stage scripts fall back to these values rather than to
copies of them.
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
# Word-level KD (ref §4): loss = (1 − kd_ratio)·CE + kd_ratio·D(teacher ‖ student).
KD = {"kd_ratio": 0.5, "temperature": 1.0}
# Distilling step-by-step (ref §8): loss = α·L_label + (1 − α)·L_rationale.
DSS = {"label_weight": 0.5}
# MiniLLM (ref §6): batch_size is the GLOBAL mini-batch of rollouts per optimizer step; the
# pretraining term is (1 − ptx_kd_ratio)·CE + ptx_kd_ratio·KD to the teacher on the corpus.
MINILLM = {"lr": 5e-6, "lr_scheduler": "constant", "warmup_steps": 100, "total_steps": 5000, "batch_size": 64,
           "micro_batch_size": 8, "num_rollouts": 256, "ppo_epochs": 4, "rollout_batch_size": 32,
           "teacher_mix_alpha": 0.2, "adam_betas": (0.9, 0.95), "weight_decay": 1e-6, "dropout": 0.0,
           "eval_interval": 100, "reward_scaling": 0.5, "reward_clip": 100.0, "gamma": 0.95, "clip_eps": 0.2,
           "ptx_kd_ratio": 0.5}
# On-policy distillation (ref §10, the 2025 recipe) as train_minillm.py --recipe opd: MiniLLM's
# step with these changed. The student samples alone; the per-token advantage is log p − log q of
# each sampled token (γ 0: no discount, no critic, no whitening, no clipping), plain policy
# gradient, one optimizer step per collection (num_rollouts 0 = the mini-batch).
OPD = {"teacher_mix_alpha": 0.0, "reward_scaling": 1.0, "gamma": 0.0, "no_length_norm": True, "whiten": "none",
       "no_single_step_reg": True, "clip_eps": 0.0, "ppo_epochs": 1, "num_rollouts": 0}
# GKD (ref §10, TRL's GKDTrainer): generalised JSD_β alone (kd_ratio 1) on the student's own
# samples in a fraction λ of the steps, the data's responses in the others.
GKD = {"kd_ratio": 1.0, "kd_loss": "js_divergence", "jsd_beta": 0.5, "lambda": 0.5, "off_policy": "data"}
# DistiLLM (ref §10): skew forward KL alone with adaptive student-generated outputs through a
# replay buffer.
DISTILLM = {"kd_ratio": 1.0, "kd_loss": "skew_forward_kl", "skew_alpha": 0.1, "init_threshold": 0.0,
            "loss_eps": 0.1, "capacity": 1000}
RECIPES = {"sft": SFT, "init": INIT, "teacher": TEACHER, "dss_teacher": DSS_TEACHER, "kd": KD, "dss": DSS,
           "minillm": MINILLM, "opd": OPD, "gkd": GKD, "distillm": DISTILLM}


def shell_word(value) -> str:
    """A value as the recipes write it: small floats in scientific form (5e-4, not 0.0005, so that
    logs and command lines read like the paper), a tuple as one space-separated word."""
    if isinstance(value, tuple):
        return shlex.quote(" ".join(shell_word(item) for item in value))
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        return np.format_float_scientific(value, trim="-", exp_digits=1)  # shortest exact form
    if isinstance(value, bool):
        return "1" if value else "0"
    return shlex.quote(str(value))


def shell_values() -> dict[str, str]:
    """PAPER_<RECIPE>_<KEY> → its value as a shell word."""
    return {f"PAPER_{recipe.upper()}_{key.upper()}": shell_word(value)
            for recipe, values in RECIPES.items() for key, value in values.items()}


if __name__ == "__main__":
    print("\n".join(f"{name}={value}" for name, value in shell_values().items()))
