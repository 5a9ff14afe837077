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
from dataclasses import dataclass

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


# ----------------------------------------------------------------------------------------------
# The peer methods as their authors run them (reference §11). Each peer arm has two recipes:
# *controlled* (the driver's gkd / distillm / opd arms: the SFT student continued with MiniLLM's
# steps, batch, optimizer and corpus term, so that SFT (continued) is its control) and *reference*
# (below: the authors' own values, read from `source`). A reference recipe is complete: its
# entrypoint's defaults plus `flags`, plus the paths, seed, lengths and device settings every arm
# gets; values the entrypoint's defaults already match are listed anyway where the authors set
# them, so that the recipe reads like their script. `scaled` names the flags whose authors' value
# cannot be kept on a small preset and says how the preset sets them there; `reference_flags`
# takes the preset's values for exactly those. Reference rows have no matched control arm: they
# are exploratory, outside the declared primary comparisons.
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReferenceRecipe:
    key: str  # the driver arm
    label: str
    entrypoint: str
    init: str  # the student it starts from
    corpus: str  # its pretraining-corpus term
    uses_corpus: bool  # the run gets --ptx-data-dir (the flags set the term's loss)
    source: str  # repository@commit and the files the values come from
    flags: dict[str, object]  # argparse dest → the authors' value (GPT-2 scale); True = a switch that is on
    scaled: dict[str, str]  # dest → how a preset that cannot keep the authors' value sets it
    deviations: tuple[str, ...] = ()  # what still differs from the authors' runs, and its consequence


DISTILLM_REFERENCE = ReferenceRecipe(
    key="distillm-ref", label="DistiLLM (reference recipe)", entrypoint="train_kd.py",
    init="the SFT student (its lowest-validation-loss checkpoint; DistiLLM's results/gpt2/train/init)",
    corpus="plain cross-entropy on the pretraining chunks, weight 1 (--lm-coef 1), a batch as large as the task's",
    uses_corpus=True,
    source="jongwooko/distillm@d47e77f: scripts/gpt2/distillm/train_0.1B_1.5B.sh (optimizer, schedule, epochs, "
           "batch 8 per GPU × 16 GPUs, --type adaptive-sfkl, sampling), finetune.py (the SGO rule, validation at "
           "step 0 and once per epoch with --eval-interval -1, the corpus term, dropout kept: model.train()), "
           "arguments.py (defaults: --skew-alpha 0.1, --lm-coef 1, --lr-min 1e-7, --replay-ratio decreasing)",
    flags={"kd_ratio": 1.0, "kd_loss": "skew_forward_kl", "skew_alpha": 0.1,
           "adaptive_sgo": True, "sgo_init_probability": 0.0, "sgo_loss_eps": 0.1, "sgo_capacity": 1000,
           "response_temperature": 1.0, "top_k": 0, "top_p": 1.0,
           "lr": 5e-4, "lr_scheduler": "cosine", "lr_min": 1e-7, "warmup_steps": 0, "weight_decay": 1e-2,
           "adam_betas": (0.9, 0.999), "clip_grad": 1.0, "batch_size": 128, "epochs": 20, "total_steps": 0,
           "eval_interval": 0, "ptx_kd_ratio": 0.0},
    scaled={"lr": "the preset's student SFT learning rate (DistiLLM's 5e-4 is the GPT-2 SFT rate of the MiniLLM "
                  "codebase it extends; tiny: 1.75e-3)",
            "batch_size": "the preset's global batch (tiny: 32)",
            "epochs": "the preset's student SFT epochs (tiny: 6, 558 steps, as SFT itself; 20 epochs for two arms × 5 "
                      "seeds are ~3 h of stage time on 2 cores). Validation stays once per epoch, so the loss-rise "
                      "rule gets 6 comparisons instead of 20"},
    deviations=(
        "The step's kind (data, fresh student samples, replay) is drawn once per optimizer step from (seed, step); "
        "DistiLLM draws per micro-batch with numpy's global generator. Same probabilities.",
        "DistiLLM's sampler puts a generated sequence's labels at the input's own positions and strips EOS "
        "(GPT-2 pad = eos), so it never distils the first response token and never learns to stop on its own "
        "samples; ours shifts correctly and keeps EOS. Ours is the algorithm as the paper states it.",
        "Its validation loss is the mean over evaluation batches of each batch's token-mean CE; ours is the token "
        "mean over the whole validation set (the same within rounding when batches are full).",
        "Its corpus term is a per-micro-batch token mean; ours a token mean over the global batch of chunks.",
    ))

GKD_REFERENCE = ReferenceRecipe(
    key="gkd-ref", label="GKD (reference recipe)", entrypoint="train_kd.py",
    init="the SFT student (as the controlled arm)",
    corpus="none (TRL's GKDTrainer has no corpus term)",
    uses_corpus=False,
    source="huggingface/trl@7310b81 (trl/experimental/gkd/gkd_trainer.py: GKDTrainer.training_step draws "
           "random() <= lmbda per call, compute_loss is generalized_jsd_loss alone; @b992725 gkd_config.py: "
           "GKDConfig defaults temperature 0.9, lmbda 0.5, beta 0.5, max_new_tokens 128, disable_dropout True, "
           "seq_kd False)",
    flags={"kd_ratio": 1.0, "kd_loss": "js_divergence", "jsd_beta": 0.5, "gkd_lambda": 0.5, "gkd_off_policy": "data",
           "response_temperature": 0.9, "response_max_new_tokens": 128, "top_k": 0, "top_p": 1.0, "dropout": 0.0,
           # TRL prescribes no optimizer for GKD (its TrainingArguments defaults are a library's, not a
           # recipe): MiniLLM's, as in the controlled arm.
           "lr": MINILLM["lr"], "lr_scheduler": MINILLM["lr_scheduler"], "warmup_steps": MINILLM["warmup_steps"],
           "total_steps": MINILLM["total_steps"], "batch_size": MINILLM["batch_size"],
           "adam_betas": MINILLM["adam_betas"], "weight_decay": MINILLM["weight_decay"],
           "eval_interval": MINILLM["eval_interval"]},
    scaled={"response_max_new_tokens": "min(128, the preset's --max-length − --max-prompt-length) (tiny: 48)",
            "lr": "the controlled arm's (tiny: MINILLM_LR 5e-4)",
            "warmup_steps": "the controlled arm's (tiny: MINILLM_WARMUP 0)",
            "total_steps": "the controlled arm's (tiny: MINILLM_STEPS 64)",
            "batch_size": "the controlled arm's (tiny: MINI_BATCH 32)",
            "eval_interval": "the controlled arm's (tiny: MINILLM_EVAL_INTERVAL 32)"},
    deviations=(
        "λ is drawn once per optimizer step; TRL draws once per training_step call, i.e. per micro-batch, the same "
        "on every rank. At TRL's default gradient_accumulation_steps 1 that is one draw per optimizer step, as "
        "ours; with accumulation TRL mixes kinds within a step.",
        "TRL's loss is a token mean per micro-batch; ours over the global batch (equal without accumulation).",
        "Optimizer, steps and batch are MiniLLM's (TRL has no GKD recipe for them).",
    ))

OPD_REFERENCE = ReferenceRecipe(
    key="opd-ref", label="On-policy distillation (reference recipe)", entrypoint="train_minillm.py",
    init="the SFT student (as the controlled arm)",
    corpus="none (tinker-cookbook's on-policy distillation has none)",
    uses_corpus=False,
    source="thinking-machines-lab/tinker-cookbook (tinker_cookbook/recipes/distillation/on_policy_distillation.py "
           "@705fe35: group_size 4, temperature 1, kl_penalty_coef 1, kl_discount_factor 0, loss_fn "
           "importance_sampling; tinker_cookbook/distillation/train_on_policy.py @53aaf8d: advantage −coef·(log q − "
           "log p) per token, one optimizer step per batch; tinker_cookbook/rl/train.py @d69aae9: Adam β 0.9, 0.95, "
           "eps 1e-8, no gradient clipping)",
    flags={"recipe": "opd", "samples_per_prompt": 4, "loss_reduction": "sum", "clip_grad": 0.0,
           "reward_scaling": 1.0, "gamma": 0.0, "teacher_mix_alpha": 0.0, "ppo_epochs": 1, "num_rollouts": 0,
           "lr": MINILLM["lr"], "lr_scheduler": MINILLM["lr_scheduler"], "warmup_steps": MINILLM["warmup_steps"],
           "total_steps": MINILLM["total_steps"], "batch_size": MINILLM["batch_size"],
           "adam_betas": MINILLM["adam_betas"], "eval_interval": MINILLM["eval_interval"]},
    scaled={"lr": "the controlled arm's (tiny: MINILLM_LR 5e-4)",
            "warmup_steps": "the controlled arm's (tiny: MINILLM_WARMUP 0)",
            "total_steps": "the controlled arm's (tiny: MINILLM_STEPS 64)",
            "batch_size": "the controlled arm's, 4 samples of each of batch / 4 prompts (tiny: MINI_BATCH 32)",
            "eval_interval": "the controlled arm's (tiny: MINILLM_EVAL_INTERVAL 32)"},
    deviations=(
        "Full fine-tuning where the cookbook trains a rank-128 LoRA; its learning rates (1e-4 LoRA, 5e-5 full) are "
        "for Qwen3-8B and are not transferred: MiniLLM's steps, batch and learning rate are kept.",
        "The cookbook's batch is 1024 prompts × 4 samples per step; ours the controlled arm's mini-batch.",
        "Rewards are clipped to ±100 nats (--reward-clip): only a token the teacher cannot emit reaches it "
        "(Tinker would get an infinite advantage there).",
        "The importance ratio exp(log q_θ − log q_sampled) is exactly 1 here (one step per collection, the same "
        "weights), as in the cookbook's synchronous loop.",
    ))

ABKD_REFERENCE = ReferenceRecipe(
    key="abkd-ref", label="ABKD (reference recipe)", entrypoint="train_kd.py",
    init="the SFT student (its lowest-validation-loss checkpoint; ABKD's results/gpt2/train/init)",
    corpus="plain cross-entropy on the pretraining chunks, weight 1 (--lm-coef 1)",
    uses_corpus=True,
    source="ghwang-s/abkd@df81318: distillation_llm/scripts/gpt2/ab/train_0.1B_1.5B.sh (GPT-2 base: lr 5e-4 "
           "cosine, warm-up 0, weight decay 1e-2, 20 epochs, batch 8 per GPU × 4 GPUs, kd-ratio 1.0, --type ab; its "
           "loop runs α 0, β 1 although its START_ALPHA 0.2 / START_ALPHA_BETA 0.9 say α 0.2, β 0.7), "
           "train_0.3B_1.5B.sh and train_0.7B_1.5B.sh (α 0.2, β 0.7), distillation_llm/finetune.py (ab_div, "
           "validation once per epoch, --lm-coef 1 corpus CE, dropout kept; --student-gen does nothing for --type ab)",
    flags={"kd_ratio": 1.0, "kd_loss": "alpha_beta", "ab_alpha": 0.2, "ab_beta": 0.7,
           "lr": 5e-4, "lr_scheduler": "cosine", "lr_min": 1e-7, "warmup_steps": 0, "weight_decay": 1e-2,
           "adam_betas": (0.9, 0.999), "clip_grad": 1.0, "batch_size": 32, "epochs": 20, "total_steps": 0,
           "eval_interval": 0, "ptx_kd_ratio": 0.0},
    scaled={"lr": "the preset's student SFT learning rate (ABKD's 5e-4 is the GPT-2 SFT rate; tiny: 1.75e-3)",
            "batch_size": "the preset's global batch (tiny: 32, ABKD's own)",
            "epochs": "as DistiLLM's (tiny: 6)"},
    deviations=(
        "Our α-β limit forms carry 1/α² (1/β²), ABKD's ab_div 1/α (1/β): only at β = 0, α = 0 or α + β = 0, not at "
        "(0.2, 0.7); there its value and gradient are ABKD's (tests/test_peer_references.py).",
    ))

REFERENCE_RECIPES = {recipe.key: recipe for recipe in (DISTILLM_REFERENCE, GKD_REFERENCE, OPD_REFERENCE,
                                                       ABKD_REFERENCE)}


def reference_flags(key: str, preset: dict[str, object] | None = None) -> list[str]:
    """The command-line flags of reference recipe `key` (its entrypoint's; paths, seed, lengths and device
    settings aside). preset None: the authors' values (the GPT-2 preset); otherwise the preset's values
    for exactly the recipe's `scaled` flags, which replace the authors'."""
    recipe = REFERENCE_RECIPES[key]
    values = dict(recipe.flags)
    if preset is not None:
        if set(preset) != set(recipe.scaled):
            raise ValueError(f"{key} on a preset needs values for exactly {sorted(recipe.scaled)}, got {sorted(preset)}")
        values.update(preset)
    flags = []
    for dest, value in values.items():
        flag = "--" + dest.replace("_", "-")
        if value is True:
            flags.append(flag)
        else:
            flags += [flag, *(shell_word(item) for item in (value if isinstance(value, tuple) else (value,)))]
    return flags


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
