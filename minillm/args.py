"""Argument groups shared by the entrypoints, and their validation.

Defaults are the GPT-2 recipe of ref §3; every batch size is GLOBAL (see `engine.plan_batches`).
"""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

from minillm.eval.evaluation import DEFAULT_EVAL_SETS
from minillm.eval.generation import SamplingConfig
from minillm.losses import CROSS_TOKENIZER_DISTANCES, DIVERGENCE_PARAMS, DIVERGENCES, resolve_divergence_params
from minillm.ppo.losses import REDUCTIONS
from minillm.ppo.rollouts import WHITENING
from minillm.ppo.step import OnPolicyConfig
from minillm.recipes import DISTILLM, DSS, KD, MINILLM, OPD, SFT
from minillm.train.engine import zero_stage
from minillm.train.loop import LoopConfig
from minillm.train.response_source import DATA, TEACHER, AdaptiveSGOConfig, GKDConfig
from minillm.train.run_folder import RunFolderConfig
from minillm.train.setup import (
    CorpusConfig,
    DataConfig,
    ModelConfig,
    OptimizationConfig,
    SetupConfig,
    TeacherConfig,
)
from minillm.train.validation import ValidationConfig


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model-path", required=True, help="local Hugging Face folder of the model to train")
    group.add_argument("--tokenizer-path", help="local tokenizer folder (default: --model-path)")


def add_data_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data-dir", required=True,
                       help="processed folder holding train_0.bin/.idx and valid_0.bin/.idx + valid.jsonl")
    group.add_argument("--max-length", type=int, default=SFT["max_length"], help="prompt + response tokens per item")
    group.add_argument("--max-prompt-length", type=int, default=SFT["max_prompt_length"])
    group.add_argument("--rationale-data-dir",
                       help="step-by-step distillation: the rationale task's processed folder; --data-dir is "
                            "then the label task's, and loss = α·L_label + (1 − α)·L_rationale")
    group.add_argument("--label-weight", type=float, default=DSS["label_weight"], help="α, with --rationale-data-dir")
    group.add_argument("--token-matched-to", metavar="DIR",
                       help="a token-matched control of step-by-step distillation: train on --data-dir alone for "
                            "as many tokens as a run with DIR as its --rationale-data-dir: the steps grow by "
                            "(label + rationale tokens) / label tokens of the training items")
    group.add_argument("--train-fraction", type=float, default=1.0,
                       help="train on this fixed random fraction of the training items (data-efficiency curves)")
    group.add_argument("--fraction-budget", choices=("steps", "epochs"), default="steps",
                       help="a run sized in --epochs on a --train-fraction: 'steps' trains the optimizer steps of "
                            "--epochs passes over ALL the training items (more passes over the fraction), as the "
                            "DSS reference's curves hold max_steps; 'epochs' makes --epochs passes over the fraction")


def add_training_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--deepspeed-config", default="configs/deepspeed/zero1_fp32.json",
                       help="ZeRO stage and precision (configs/deepspeed/*.json)")
    group.add_argument("--batch-size", type=int, default=SFT["batch_size"], help="GLOBAL batch size per optimizer step")
    group.add_argument("--micro-batch-size", type=int, default=SFT["micro_batch_size"],
                       help="upper bound on the per-device micro-batch; accumulation covers the rest")
    group.add_argument("--lr", type=float, default=SFT["lr"])
    group.add_argument("--lr-min", type=float, default=1e-7, help="end of the cosine decay")
    group.add_argument("--lr-scheduler", choices=("cosine", "constant"), default="cosine")
    group.add_argument("--warmup-steps", type=int, default=0)
    group.add_argument("--weight-decay", type=float, default=0.01)
    group.add_argument("--adam-betas", type=float, nargs=2, default=(0.9, 0.999))
    group.add_argument("--clip-grad", type=float, default=1.0)
    group.add_argument("--epochs", type=int, default=SFT["epochs"])
    group.add_argument("--total-steps", type=int, default=0, help="optimizer steps; 0 = epochs × steps per epoch")
    group.add_argument("--seed", type=int, default=10)
    group.add_argument("--dropout", type=float, default=None,
                       help="override the model's dropout probabilities (default: keep the config's)")
    group.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("run")
    group.add_argument("--save", required=True, help="run folder: checkpoints, logs, best.json")
    group.add_argument("--log-interval", type=int, default=10, help="optimizer steps between log lines")
    group.add_argument("--eval-interval", type=int, default=0,
                       help="optimizer steps between evaluations + checkpoints; 0 = once per epoch")
    group.add_argument("--evaluations", type=int, default=0,
                       help="evaluate + checkpoint at most this many times, evenly spaced, the last at the end "
                            "(every ceil(steps / N) steps; so arms of different lengths get the same number of "
                            "best-checkpoint candidates); overrides --eval-interval; 0 = --eval-interval")
    group.add_argument("--eval-gen-num", type=int, default=0,
                       help="validation prompts used for sampled Rouge-L; 0 = all, -1 = skip generation")
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --save from its newest complete training state (a fresh start "
                            "when the folder is empty or missing); refused if settings that change results differ")
    group.add_argument("--overwrite", action="store_true",
                       help="delete whatever --save holds and start a new run (without it, a folder that holds "
                            "a run is refused unless --resume)")
    group.add_argument("--max-nonfinite-steps", type=int, default=5,
                       help="stop with an error after this many optimizer steps in a row with a NaN/inf loss or "
                            "gradient (each is skipped and logged)")
    group.add_argument("--stop-after-steps", type=int, default=0,
                       help="leave after this many steps in this invocation (time-boxed jobs; "
                            "continue with --resume); 0 = run to the end")
    group.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)


def add_teacher_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("teacher")
    group.add_argument("--teacher-model-path", required=True,
                       help="teacher: a model folder, or a training run folder (its best checkpoint is used)")
    group.add_argument("--teacher-pick", default="rougeL", choices=("rougeL", "valid_loss"),
                       help="which best.json entry a teacher run folder resolves to")
    group.add_argument("--kd-temperature", type=float, default=KD["temperature"])
    group.add_argument("--kd-chunk-size", type=int, default=1024,
                       help="most tokens per chunk of full-vocabulary fp32 math (bounds memory; a chunk also "
                            "stays <= 16 MiB per tensor, which is faster)")
    group.add_argument("--cross-tokenizer", choices=CROSS_TOKENIZER_DISTANCES,
                       help="the teacher has ANOTHER tokenizer: D is a cross-tokenizer distance over re-tokenized "
                            "text (minillm.train.objectives.CrossTokenizerObjective): 'uld' (universal logit "
                            "distance: sorted probabilities of the i-th response tokens) or 'aligned' (tokens that "
                            "start at the same byte; --kd-loss over the vocabulary entries both spell alike, ULD "
                            "over the rest); absent = word-level KD, which needs one shared tokenizer")
    group.add_argument("--teacher-tokenizer",
                       help="with --cross-tokenizer: the teacher's tokenizer folder (default: the teacher's own)")


def add_kd_args(parser: argparse.ArgumentParser) -> None:
    """The teacher, and word-level KD's loss on the task data: (1 − kd_ratio)·CE + kd_ratio·D."""
    add_teacher_args(parser)
    group = parser.add_argument_group("knowledge distillation (loss = (1 - kd_ratio)·CE + kd_ratio·D)")
    group.add_argument("--kd-ratio", type=float, default=KD["kd_ratio"])
    group.add_argument("--kd-loss", default="forward_kl", choices=sorted(DIVERGENCES), help="the divergence D")
    for name in sorted({p for params in DIVERGENCE_PARAMS.values() for p in params}):
        users = ", ".join(d for d, params in DIVERGENCE_PARAMS.items() if name in params)
        default = next(params[name] for params in DIVERGENCE_PARAMS.values() if name in params)
        group.add_argument(f"--{name.replace('_', '-')}", type=float, default=None,
                           help=f"parameter of {users} (default {'unset' if default is None else default})")


def add_generated_response_args(parser: argparse.ArgumentParser) -> None:
    """Responses generated during training instead of the data's (minillm.train.response_source):
    GKD (--gkd-lambda; its loss is --kd-ratio 1 --kd-loss js_divergence) or DistiLLM's adaptive
    student outputs (--adaptive-sgo; its loss is --kd-ratio 1 --kd-loss skew_forward_kl).
    They are sampled at --response-temperature for up to --response-max-new-tokens tokens, with
    the generation flags' --top-k / --top-p / --no-repeat-ngram-size; --temperature and
    --max-new-tokens are the validation's, so changing how training responses are drawn does not
    change how checkpoints are picked."""
    group = parser.add_argument_group("generated responses (GKD, DistiLLM)")
    group.add_argument("--response-temperature", type=float, default=None,
                       help="sampling temperature of the responses generated for training (default 1: pure "
                            "ancestral; TRL's GKD samples at 0.9)")
    group.add_argument("--response-max-new-tokens", type=int, default=0,
                       help="new tokens per generated training response; 0 = --max-new-tokens (TRL's GKD: 128); "
                            "at most --max-length − --max-prompt-length")
    group.add_argument("--gkd-lambda", type=float, default=0.0,
                       help="GKD's λ: the fraction of optimizer steps whose responses the student samples for "
                            "the batch's prompts; 0 = none (plain KD)")
    group.add_argument("--gkd-off-policy", choices=(DATA, TEACHER), default=DATA,
                       help="GKD: the other steps' responses: the data's, or the teacher's samples (GKD's mixing "
                            "with sequence-level KD)")
    group.add_argument("--adaptive-sgo", action="store_true",
                       help="DistiLLM: student outputs with a probability raised when the validation loss rises, "
                            "through a replay buffer")
    group.add_argument("--sgo-init-probability", type=float, default=DISTILLM["init_threshold"],
                       help="DistiLLM's init_threshold")
    group.add_argument("--sgo-loss-eps", type=float, default=DISTILLM["loss_eps"], help="DistiLLM's loss_eps")
    group.add_argument("--sgo-capacity", type=int, default=DISTILLM["capacity"],
                       help="replay buffer sequences per rank")


def response_sampling_config(args: argparse.Namespace) -> SamplingConfig:
    """How the responses generated for training are sampled (validated: see `validate`)."""
    return replace(sampling_config(args), temperature=args.response_temperature,
                   max_new_tokens=args.response_max_new_tokens or args.max_new_tokens)


def gkd_config(args: argparse.Namespace) -> GKDConfig | None:
    """GKD's settings, or None for plain KD (λ 0 and the data's responses)."""
    if args.gkd_lambda == 0 and args.gkd_off_policy == DATA:
        return None
    return GKDConfig(args.gkd_lambda, args.gkd_off_policy)


def adaptive_sgo_config(args: argparse.Namespace, total_steps: int) -> AdaptiveSGOConfig | None:
    if not args.adaptive_sgo:
        return None
    return AdaptiveSGOConfig(total_steps, args.sgo_init_probability, args.sgo_loss_eps, args.sgo_capacity)


def kd_params(args: argparse.Namespace) -> dict[str, float]:
    """The chosen divergence's parameters; one given for another divergence is an error."""
    given = {name: getattr(args, name) for params in DIVERGENCE_PARAMS.values() for name in params
             if getattr(args, name, None) is not None}
    try:
        return resolve_divergence_params(args.kd_loss, given)
    except ValueError as err:
        raise SystemExit(f"error: --kd-loss {args.kd_loss}: {err}") from None


# On-policy recipes: each is train_minillm.py's defaults with these changed (any flag still overrides).
ON_POLICY_RECIPES: dict[str, dict] = {"minillm": {}, "opd": OPD}  # minillm: add_minillm_args' own defaults


def recipe_of(argv: list[str] | None) -> str:
    """The --recipe named on a command line (before the full parse, which needs its defaults)."""
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--recipe", choices=sorted(ON_POLICY_RECIPES), default="minillm")
    return peek.parse_known_args(argv)[0].recipe


def add_minillm_args(parser: argparse.ArgumentParser, recipe: str = "minillm") -> None:
    """MiniLLM's algorithm (ref §6); each piece can be switched off for the paper's ablations, and
    `recipe` swaps in another on-policy method's defaults. --batch-size is the GLOBAL mini-batch
    of rollouts per optimizer step."""
    group = parser.add_argument_group("on-policy (MiniLLM, on-policy distillation)")
    group.add_argument("--recipe", choices=sorted(ON_POLICY_RECIPES), default="minillm",
                       help="the on-policy method whose defaults apply: minillm (ref §6) or opd (on-policy "
                            "distillation: student samples, advantage log p − log q per token, γ 0, no "
                            "clipping, one step per collection)")
    group.add_argument("--num-rollouts", type=int, default=MINILLM["num_rollouts"],
                       help="GLOBAL rollouts per collection; 0 = --batch-size (one optimizer step per collection)")
    group.add_argument("--ppo-epochs", type=int, default=MINILLM["ppo_epochs"], help="passes over each collection")
    group.add_argument("--rollout-batch-size", type=int, default=MINILLM["rollout_batch_size"], help="prompts per sampling batch, per rank")
    group.add_argument("--teacher-mix-alpha", type=float, default=MINILLM["teacher_mix_alpha"],
                       help="sample from α·p_teacher + (1 − α)·q_student; 0 = no teacher-mixed sampling")
    group.add_argument("--reward-scaling", type=float, default=MINILLM["reward_scaling"])
    group.add_argument("--reward-clip", type=float, default=MINILLM["reward_clip"])
    group.add_argument("--gamma", type=float, default=MINILLM["gamma"], help="discount of the returns (0 = none)")
    group.add_argument("--clip-eps", type=float, default=MINILLM["clip_eps"], help="PPO ratio clipping; 0 = no clipping")
    group.add_argument("--no-length-norm", action="store_true", help="ablation: returns not divided by remaining length")
    group.add_argument("--no-single-step-reg", action="store_true", help="ablation: drop the single-step reverse KL")
    group.add_argument("--whiten", choices=WHITENING, default="tokens",
                       help="advantage whitening: 'tokens' = over the real response tokens of a whole collection "
                            "(all ranks); 'reference' = LMOps' MiniLLM, over every response slot of each "
                            "mini-batch, padding zeros included; 'none' = the raw returns")
    group.add_argument("--samples-per-prompt", type=int, default=1,
                       help="rollouts of each drawn prompt per collection (on-policy distillation's reference: "
                            "Tinker's group_size 4); --num-rollouts counts them all")
    group.add_argument("--loss-reduction", choices=REDUCTIONS, default="mean",
                       help="the rollout terms over response tokens: 'mean' over the global mini-batch's tokens "
                            "(MiniLLM), or 'sum' (Tinker's importance_sampling loss: a step's gradient grows with its "
                            "tokens, and gradient clipping sees the sum; Tinker does not clip: --clip-grad 0)")
    parser.set_defaults(**{**MINILLM, **ON_POLICY_RECIPES[recipe]})


def add_pretraining_args(parser: argparse.ArgumentParser, default_kd_ratio: float = 0.0) -> None:
    """MiniLLM's pretraining term (minillm.train.pretraining_term), trained with
    (1 − r)·CE + r·D(teacher ‖ student) on the corpus: r = --ptx-kd-ratio, D = --ptx-kd-loss at its
    default parameters. train_minillm.py defaults to MiniLLM's r 0.5; train_kd.py (the on-policy
    runs' control arms, GKD, DistiLLM) to 0 (cross-entropy alone) unless the caller gives MiniLLM's."""
    group = parser.add_argument_group("pretraining corpus")
    group.add_argument("--ptx-data-dir", help="processed pretraining corpus (tools/process_data_pretrain.py); "
                                              "absent = no pretraining term")
    group.add_argument("--ptx-batch-size", type=int, default=0, help="GLOBAL corpus chunks per step; 0 = --batch-size")
    group.add_argument("--ptx-kd-ratio", type=float, default=default_kd_ratio,
                       help=f"r of the corpus term (MiniLLM's: {MINILLM['ptx_kd_ratio']}); 0 = cross-entropy alone")
    group.add_argument("--ptx-kd-loss", default="forward_kl", choices=sorted(DIVERGENCES),
                       help="D of the corpus term (MiniLLM's default forward_kl), at its default parameters")


DEFAULT_MAX_NEW_TOKENS = 256  # MiniLLM's evaluation protocol (ref §7)


def add_generation_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("generation (MiniLLM's protocol by default, ref §7)")
    group.add_argument("--max-new-tokens", type=int, default=0,
                       help=f"0 = --max-length − --max-prompt-length in training (256 with the defaults), "
                            f"{DEFAULT_MAX_NEW_TOKENS} (MiniLLM's evaluation) in the generation tools")
    group.add_argument("--temperature", type=float, default=1.0)
    group.add_argument("--top-k", type=int, default=0, help="0 = off")
    group.add_argument("--top-p", type=float, default=1.0)
    group.add_argument("--no-repeat-ngram-size", type=int, default=0,
                       help="0 = off (pure ancestral sampling); MiniLLM's final evaluation used 6")
    group.add_argument("--eval-batch-tokens", type=int, default=65536,
                       help="generation batch budget in tokens: rows × (prompt + new tokens)")
    group.add_argument("--compile-decode", action="store_true",
                       help="static KV cache + compiled single-token step (CUDA graphs on a GPU) for every "
                            "sampler: same tokens as the default loop; opt-in until measured faster on a GPU")


def add_eval_set_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evaluation sets")
    group.add_argument("--data-root", required=True, help="folder with one sub-folder per eval set (MiniLLM's data/)")
    group.add_argument("--eval-sets", nargs="+", default=list(DEFAULT_EVAL_SETS),
                       help="set names; the defaults that are absent are skipped, named ones must exist")
    group.add_argument("--seeds", type=int, nargs="+", default=[10, 20, 30, 40, 50])
    group.add_argument("--max-eval-rows", type=int, default=0, help="first N rows of each set; 0 = all")


def token_training_parser(description: str, *extra_groups) -> argparse.ArgumentParser:
    """The flags of a training entrypoint, plus method-specific groups. Those come last, so the
    recipe defaults they set (`parser.set_defaults`) override the shared groups' defaults."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for add_group in (add_model_args, add_data_args, add_training_args, add_run_args, add_generation_args,
                      *extra_groups):
        add_group(parser)
    return parser


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    return SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                          top_k=args.top_k, top_p=args.top_p, no_repeat_ngram_size=args.no_repeat_ngram_size,
                          decode=decode_mode(args))


def decode_mode(args: argparse.Namespace) -> str:
    return "compiled" if args.compile_decode else "eager"


def loop_config(args: argparse.Namespace, total_steps: int, steps_per_eval: int) -> LoopConfig:
    """The loop's settings; --eval-interval 0 = `steps_per_eval` (an epoch, or a collection)."""
    interval = math.ceil(total_steps / args.evaluations) if args.evaluations else args.eval_interval or steps_per_eval
    return LoopConfig(save=args.save, total_steps=total_steps, eval_interval=interval,
                      log_interval=args.log_interval, resume=args.resume, stop_after_steps=args.stop_after_steps)


def setup_config(args: argparse.Namespace, entrypoint: str) -> SetupConfig:
    """What `prepare_training` needs; the run folder's `flags` are every flag (the run's identity
    and the config echo)."""
    return SetupConfig(
        entrypoint=entrypoint,
        run=RunFolderConfig(save=args.save, resume=args.resume, overwrite=args.overwrite, flags=dict(vars(args))),
        model=ModelConfig(model_path=args.model_path, tokenizer_path=args.tokenizer_path, dropout=args.dropout,
                          gradient_checkpointing=args.gradient_checkpointing),
        data=DataConfig(data_dir=args.data_dir, max_length=args.max_length, rationale_data_dir=args.rationale_data_dir,
                        token_matched_to=args.token_matched_to,
                        label_weight=args.label_weight, train_fraction=args.train_fraction,
                        fraction_budget=args.fraction_budget),
        optimization=OptimizationConfig(
            deepspeed_config=args.deepspeed_config, batch_size=args.batch_size, micro_batch_size=args.micro_batch_size,
            lr=args.lr, lr_min=args.lr_min, lr_scheduler=args.lr_scheduler, warmup_steps=args.warmup_steps,
            weight_decay=args.weight_decay, adam_betas=tuple(args.adam_betas), clip_grad=args.clip_grad,
            epochs=args.epochs, total_steps=args.total_steps, seed=args.seed,
            max_nonfinite_steps=args.max_nonfinite_steps))


def teacher_config(args: argparse.Namespace) -> TeacherConfig:
    return TeacherConfig(model_path=args.teacher_model_path, pick=args.teacher_pick,
                         kd_temperature=args.kd_temperature, cache=tuple(getattr(args, "teacher_cache", None) or ()),
                         tokenizer=getattr(args, "teacher_tokenizer", None))


def corpus_config(args: argparse.Namespace) -> CorpusConfig:
    return CorpusConfig(data_dir=args.ptx_data_dir, batch_size=args.ptx_batch_size)


def validation_config(args: argparse.Namespace) -> ValidationConfig:
    return ValidationConfig(sampling_config(args), args.eval_gen_num, args.seed, args.max_prompt_length,
                            args.eval_batch_tokens)


def on_policy_config(args: argparse.Namespace) -> OnPolicyConfig:
    return OnPolicyConfig(
        num_rollouts=args.num_rollouts, ppo_epochs=args.ppo_epochs, rollout_batch_size=args.rollout_batch_size,
        max_new_tokens=args.max_new_tokens, max_prompt_length=args.max_prompt_length,
        teacher_mix_alpha=args.teacher_mix_alpha, reward_scaling=args.reward_scaling, reward_clip=args.reward_clip,
        gamma=args.gamma, length_norm=not args.no_length_norm, clip_eps=args.clip_eps or None,
        single_step_reg=not args.no_single_step_reg, whiten=args.whiten, seed=args.seed, decode=decode_mode(args),
        samples_per_prompt=args.samples_per_prompt, loss_reduction=args.loss_reduction)


def validate(args: argparse.Namespace) -> argparse.Namespace:
    """Range and combination checks, with messages that name the flag."""
    def need(condition: bool, message: str) -> None:
        if not condition:
            raise SystemExit(f"error: {message}")

    if hasattr(args, "max_length"):
        need(0 < args.max_prompt_length < args.max_length,
             f"--max-prompt-length ({args.max_prompt_length}) must be positive and below --max-length ({args.max_length})")
        if args.max_new_tokens == 0:
            args.max_new_tokens = args.max_length - args.max_prompt_length
    elif getattr(args, "max_new_tokens", None) == 0:
        args.max_new_tokens = DEFAULT_MAX_NEW_TOKENS
    need(getattr(args, "max_new_tokens", 1) > 0, "--max-new-tokens must be positive")
    for flag in ("batch_size", "micro_batch_size", "epochs", "eval_batch_tokens", "max_nonfinite_steps"):
        if hasattr(args, flag):
            need(getattr(args, flag) > 0, f"--{flag.replace('_', '-')} must be positive")
    for flag in ("total_steps", "warmup_steps", "eval_interval", "evaluations", "max_eval_rows", "stop_after_steps"):
        if hasattr(args, flag):
            need(getattr(args, flag) >= 0, f"--{flag.replace('_', '-')} must be ≥ 0")
    if hasattr(args, "lr"):
        need(args.lr > 0 and 0 <= args.lr_min <= args.lr, "need 0 ≤ --lr-min ≤ --lr and --lr > 0")
    if hasattr(args, "kd_temperature"):
        need(args.kd_temperature > 0 and args.kd_chunk_size > 0, "--kd-temperature and --kd-chunk-size must be positive")
    if hasattr(args, "kd_ratio"):
        need(0 <= args.kd_ratio <= 1, "--kd-ratio must be in [0, 1]")
        kd_params(args)
    if getattr(args, "cross_tokenizer", None):
        need(not getattr(args, "teacher_cache", None),
             "--teacher-cache stores teacher scores over the student's vocabulary: it cannot serve --cross-tokenizer")
        need(getattr(args, "ptx_kd_ratio", 0) == 0,
             "--cross-tokenizer: the corpus term's KD (--ptx-kd-ratio) needs a shared tokenizer; give --ptx-kd-ratio 0")
        need(getattr(args, "gkd_off_policy", DATA) == DATA,
             "--cross-tokenizer: --gkd-off-policy teacher would train the student on the teacher's token ids; "
             "write the teacher's samples as data in the student's tokenizer instead (tools/retokenize_data.py)")
        if args.cross_tokenizer == "uld" and hasattr(args, "kd_loss"):
            need(args.kd_loss == "forward_kl" and not kd_params(args),
                 "--cross-tokenizer uld compares sorted probabilities: it takes no --kd-loss or divergence parameter")
    else:
        need(getattr(args, "teacher_tokenizer", None) is None, "--teacher-tokenizer applies with --cross-tokenizer only")
    if hasattr(args, "gkd_lambda"):
        need(0 <= args.gkd_lambda <= 1, "--gkd-lambda must be in [0, 1]")
        generates = bool(gkd_config(args)) or args.adaptive_sgo
        if args.response_temperature is None:
            # --temperature once set both; refusing here keeps an old command line from silently
            # sampling its training responses at another temperature than it did.
            need(not (generates and args.temperature != 1.0),
                 f"--temperature {args.temperature:g} sets only the validation's sampling: give --response-temperature "
                 f"for the responses generated during training (GKD, DistiLLM)")
            args.response_temperature = 1.0
        need(args.response_temperature > 0, "--response-temperature must be positive")
        budget = args.max_length - args.max_prompt_length
        need(0 <= args.response_max_new_tokens <= budget,
             f"--response-max-new-tokens ({args.response_max_new_tokens}) must be in [0, --max-length − "
             f"--max-prompt-length = {budget}]: a generated response must fit the training sequence")
        need(not (args.adaptive_sgo and gkd_config(args)), "give GKD's --gkd-* flags or --adaptive-sgo, not both")
        need(0 <= args.sgo_init_probability <= 1 and args.sgo_capacity > 0,
             "need 0 ≤ --sgo-init-probability ≤ 1 and --sgo-capacity > 0")
        need(not (getattr(args, "teacher_cache", None) and getattr(args, "ptx_kd_ratio", 0) > 0),
             "--teacher-cache holds the data streams' teacher scores, not the corpus's: give --ptx-kd-ratio 0 with it")
        need(not (getattr(args, "teacher_cache", None) and (gkd_config(args) or args.adaptive_sgo)),
             "--teacher-cache holds the teacher's scores of the data's responses only: it cannot score responses "
             "generated during training (--gkd-lambda, --gkd-off-policy teacher, --adaptive-sgo); drop one")
    if hasattr(args, "num_rollouts"):
        need(args.total_steps > 0, "--total-steps must be set for MiniLLM")
        need(args.num_rollouts >= 0, "--num-rollouts must be ≥ 0")
        if args.num_rollouts == 0:
            args.num_rollouts = args.batch_size
        need(args.num_rollouts % args.batch_size == 0,
             f"--num-rollouts ({args.num_rollouts}) must be a multiple of --batch-size ({args.batch_size})")
        need(0 <= args.teacher_mix_alpha <= 1, "--teacher-mix-alpha must be in [0, 1]")
        need(args.reward_scaling > 0 and 0 <= args.gamma <= 1 and args.clip_eps >= 0,
             "need --reward-scaling > 0, 0 ≤ --gamma ≤ 1, --clip-eps ≥ 0")
        need(args.ppo_epochs > 0 and args.rollout_batch_size > 0, "--ppo-epochs and --rollout-batch-size must be positive")
        need(args.samples_per_prompt > 0 and args.num_rollouts % args.samples_per_prompt == 0,
             f"--samples-per-prompt ({args.samples_per_prompt}) must be positive and divide --num-rollouts "
             f"({args.num_rollouts})")
    if hasattr(args, "ptx_batch_size"):
        need(args.ptx_batch_size >= 0, "--ptx-batch-size must be ≥ 0")
        need(0 <= getattr(args, "ptx_kd_ratio", 0) <= 1, "--ptx-kd-ratio must be in [0, 1]")
        if args.ptx_batch_size == 0:
            args.ptx_batch_size = args.batch_size
    if hasattr(args, "train_fraction"):
        need(0 < args.train_fraction <= 1, "--train-fraction must be in (0, 1]")
        need(0 <= args.label_weight <= 1, "--label-weight must be in [0, 1]")
        need(args.rationale_data_dir is None or Path(args.rationale_data_dir).is_dir(),
             f"--rationale-data-dir {args.rationale_data_dir} does not exist")
        need(args.token_matched_to is None or Path(args.token_matched_to).is_dir(),
             f"--token-matched-to {args.token_matched_to} does not exist")
        need(not (args.token_matched_to and args.rationale_data_dir),
             "--token-matched-to is the control without the rationale task: drop --rationale-data-dir")
        need(not (args.token_matched_to and hasattr(args, "num_rollouts")),
             "--token-matched-to sizes a token-level run (train_sft.py, train_kd.py); an on-policy run samples its "
             "own tokens")
    need(not (getattr(args, "resume", False) and getattr(args, "overwrite", False)),
         "--resume continues the run in --save and --overwrite deletes it: give one of them")
    if getattr(args, "dropout", None) is not None:
        need(0 <= args.dropout < 1, "--dropout must be in [0, 1)")
    if hasattr(args, "deepspeed_config"):
        need(Path(args.deepspeed_config).is_file(), f"--deepspeed-config {args.deepspeed_config} does not exist")
        need(not args.compile_decode or zero_stage(json.loads(Path(args.deepspeed_config).read_text())) != 3,
             "--compile-decode cannot run under ZeRO-3: torch.compile cannot trace its parameter-gathering hooks; "
             "use a ZeRO-1/2 config or drop the flag")
    return args


def add_teacher_cache_args(parser: argparse.ArgumentParser) -> None:
    """Read the teacher from tools/cache_teacher.py's cache instead of running it (minillm.data.teacher_cache)."""
    group = parser.add_argument_group("teacher cache")
    group.add_argument("--teacher-cache", nargs="+", metavar="DIR",
                       help="train_kd.py: one cache folder per task stream (--data-dir's, then --rationale-data-dir's), "
                            "and the teacher is not loaded; train_minillm.py: the --ptx-data-dir corpus's cache, for "
                            "its KD term. Refused unless made with this teacher, tokenizer, --kd-temperature, data "
                            "and --max-length")


def add_teacher_logits_args(parser: argparse.ArgumentParser) -> None:
    """MiniLLM: keep the teacher logits the sampler computes, for the single-step term."""
    group = parser.add_argument_group("teacher logits reuse")
    group.add_argument("--teacher-logits-budget", type=_non_negative_float, default=None, metavar="MIB",
                       help="keep the teacher's next-token logits from sampling (per rank, MiB) and use them for the "
                            "single-step term instead of a teacher forward per mini-batch: the full vocabulary when "
                            "it fits, else the top k tokens + tail that fit (an approximation; logged); 0 = off (a "
                            "forward per mini-batch, the recomputed path). Unset: the full vocabulary when it fits "
                            "in 1024 MiB (exact up to float rounding), else off")


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be ≥ 0, got {text}")
    return value
