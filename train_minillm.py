"""MiniLLM: distil a teacher into a student by minimising the reverse KL KL(q_student ‖ p_teacher)
with policy gradient (ref §6; DeepSpeed entrypoint).

  deepspeed --num_gpus N train_minillm.py --model-path STUDENT_INIT --teacher-model-path TEACHER_RUN \\
      --data-dir PROMPT_DATA --ptx-data-dir CORPUS --save RUN [options]
Defaults are the paper's: 256 rollouts per collection, 4 PPO epochs, mini-batch 64, α = 0.2,
γ = 0.95, lr 5e-6 constant after 100 warm-up steps, 5000 steps. See scripts/lib/minillm.sh and minillm/recipes.py.
`--recipe opd` is on-policy distillation with the same step (scripts/opd/opd_base.sh).
`--recipe opd --cross-tokenizer aligned --teacher-tokenizer T`: a teacher with ANOTHER tokenizer scores
the student's finished samples as text (minillm.ppo.cross_tokenizer; docs/cross-tokenizer.md).
Paying the teacher once: `--teacher-cache DIR` (tools/cache_teacher.py on the corpus) for the
pretraining KD term; the single-step term reuses the sampler's teacher logits by default when they
fit (`--teacher-logits-budget`; 0 = a teacher forward per mini-batch).
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from minillm import args as cli
from minillm.data.cross_tokenizer import TextCodec
from minillm.losses import resolve_divergence_params
from minillm.modeling import max_positions
from minillm.ppo.cross_tokenizer import CrossTokenizerRolloutScorer
from minillm.ppo.rollouts import default_teacher_logits_budget, describe_teacher_logits_plan
from minillm.ppo.step import OnPolicyStep
from minillm.recipes import MINILLM
from minillm.train.loop import TrainingLoop, finish_run
from minillm.train.objectives import KDObjective
from minillm.train.setup import load_cross_tokenizer_teacher, load_teacher, prepare_training, pretraining_term


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The flags, with the defaults of the --recipe that `argv` names."""
    recipe = cli.recipe_of(argv)
    return cli.token_training_parser(__doc__, cli.add_teacher_args,
                                     lambda p: cli.add_pretraining_args(p, MINILLM["ptx_kd_ratio"]),
                                     lambda p: cli.add_minillm_args(p, recipe), cli.add_teacher_cache_args,
                                     cli.add_teacher_logits_args)


def main(argv: list[str] | None = None) -> None:
    args = cli.validate(parser(argv).parse_args(argv))
    if args.teacher_cache and not args.ptx_data_dir:
        raise SystemExit("error: --teacher-cache serves the pretraining term's KD: give --ptx-data-dir too")
    if args.cross_tokenizer and (args.cross_tokenizer != "aligned" or args.ptx_data_dir):
        raise SystemExit("error: --cross-tokenizer in train_minillm.py: the rewards come from the teacher's "
                         "log-probabilities over the spans both tokenizations cut alike: give --cross-tokenizer aligned "
                         "(ULD has no per-token log-probability), and no --ptx-data-dir (its KD term needs a shared "
                         "tokenizer)")
    setup = prepare_training(cli.setup_config(args, "train_minillm"))
    teacher_config = cli.teacher_config(args)
    teacher_terms = None
    if args.cross_tokenizer:
        teacher, teacher_tokenizer = load_cross_tokenizer_teacher(teacher_config, setup)
        vocab_size = len(setup.tokenizer)
        teacher_terms = CrossTokenizerRolloutScorer(teacher, TextCodec(setup.tokenizer), TextCodec(teacher_tokenizer),
                                                    max_positions(teacher), args.rollout_batch_size)
    else:
        teacher, vocab_size = load_teacher(teacher_config, setup)
    # With --teacher-cache the corpus's KD term reads the cache (teacher=None) instead of a teacher forward.
    corpus_objective = KDObjective(None if args.teacher_cache else teacher, args.ptx_kd_ratio, args.ptx_kd_loss,
                                   vocab_size, args.kd_temperature, args.kd_chunk_size,
                                   resolve_divergence_params(args.ptx_kd_loss, {}))
    config = cli.on_policy_config(args)
    rollouts_per_rank = config.num_rollouts // setup.dist.world_size
    budget = args.teacher_logits_budget
    if budget is None:  # the sampler's logits when the full vocabulary fits (exact), else a teacher forward;
        # a teacher with another tokenizer has no logits over the student's tokens to keep
        budget = 0.0 if teacher_terms is not None or not config.single_step_reg else default_teacher_logits_budget(
            rollouts_per_rank, config.max_new_tokens, vocab_size, teacher.dtype)
    config = replace(config, teacher_logits_budget_mib=budget)
    try:
        if config.single_step_reg:  # a budget too small is refused here
            setup.log.info(describe_teacher_logits_plan(budget, rollouts_per_rank, config.max_new_tokens, vocab_size,
                                                        teacher.dtype))
        method = OnPolicyStep(setup, config, teacher, vocab_size, setup.train_set,
                              cli.validation_config(args),
                              pretraining_term(cli.corpus_config(args), teacher_config, setup, corpus_objective),
                              teacher_terms)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    loop = TrainingLoop(cli.loop_config(args, setup.total_steps, method.steps_per_collection), setup, method)
    finish_run(setup, loop.run())


if __name__ == "__main__":
    main()
