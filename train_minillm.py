"""MiniLLM: distil a teacher into a student by minimising the reverse KL KL(q_student ‖ p_teacher)
with policy gradient (ref §6; DeepSpeed entrypoint).

  deepspeed --num_gpus N train_minillm.py --model-path STUDENT_INIT --teacher-model-path TEACHER_RUN \\
      --data-dir PROMPT_DATA --ptx-data-dir CORPUS --save RUN [options]
Defaults are the paper's: 256 rollouts per collection, 4 PPO epochs, mini-batch 64, α = 0.2,
γ = 0.95, lr 5e-6 constant after 100 warm-up steps, 5000 steps. See scripts/lib/minillm.sh and minillm/recipes.py.
`--recipe opd` is on-policy distillation with the same step (scripts/opd/opd_base.sh).
Paying the teacher once: `--teacher-cache DIR` (tools/cache_teacher.py on the corpus) for the
pretraining KD term; the single-step term reuses the sampler's teacher logits by default when they
fit (`--teacher-logits-budget`; 0 = a teacher forward per mini-batch).
"""
from __future__ import annotations

from dataclasses import replace

from minillm import args as cli
from minillm.ppo.rollouts import default_teacher_logits_budget, describe_teacher_logits_plan
from minillm.ppo.step import OnPolicyStep
from minillm.train.loop import TrainingLoop, finish_run
from minillm.train.objectives import KDObjective
from minillm.train.setup import load_teacher, prepare_training, pretraining_term


def main(argv: list[str] | None = None) -> None:
    recipe = cli.recipe_of(argv)
    parser = cli.token_training_parser(__doc__, cli.add_kd_args, cli.add_pretraining_args,
                                       lambda p: cli.add_minillm_args(p, recipe), cli.add_teacher_cache_args,
                                       cli.add_teacher_logits_args)
    args = cli.validate(parser.parse_args(argv))
    if args.teacher_cache and not args.ptx_data_dir:
        raise SystemExit("error: --teacher-cache serves the pretraining term's KD: give --ptx-data-dir too")
    setup = prepare_training(args, "train_minillm")
    teacher, vocab_size = load_teacher(args, setup)
    # With --teacher-cache the corpus's KD term reads the cache (teacher=None) instead of a teacher forward.
    corpus_objective = KDObjective(None if args.teacher_cache else teacher, args.kd_ratio, args.kd_loss, vocab_size,
                                   args.kd_temperature, args.kd_chunk_size, cli.kd_params(args))
    config = cli.on_policy_config(args)
    rollouts_per_rank = config.num_rollouts // setup.dist.world_size
    budget = args.teacher_logits_budget
    if budget is None:  # the sampler's logits when the full vocabulary fits (exact), else a teacher forward
        budget = default_teacher_logits_budget(rollouts_per_rank, config.max_new_tokens, vocab_size, teacher.dtype)
    config = replace(config, teacher_logits_budget_mib=budget)
    try:
        if config.single_step_reg:  # a budget too small is refused here
            setup.log.info(describe_teacher_logits_plan(budget, rollouts_per_rank, config.max_new_tokens, vocab_size,
                                                        teacher.dtype))
        method = OnPolicyStep(setup, config, teacher, vocab_size, setup.train_set,
                              cli.validation_config(args), pretraining_term(args, setup, corpus_objective))
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    loop = TrainingLoop(cli.loop_config(args, setup.total_steps, method.steps_per_collection), setup, method)
    finish_run(setup, loop.run())


if __name__ == "__main__":
    main()
