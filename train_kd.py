"""Word-level knowledge distillation (DeepSpeed entrypoint): train_sft.py's loop with the loss
(1 − kd_ratio)·CE + kd_ratio·D(teacher ‖ student), D any divergence of minillm.losses.

  deepspeed --num_gpus N train_kd.py --model-path STUDENT --teacher-model-path TEACHER_RUN \\
      --data-dir D --save RUN [--kd-loss forward_kl --kd-ratio 0.5 ...]
See scripts/kd/kd_base.sh. With `--teacher-cache DIR` (tools/cache_teacher.py) the teacher is read
from its cache instead of being loaded and run.
"""
from __future__ import annotations

from minillm import args as cli
from minillm.loop import TrainingLoop, finish_run
from minillm.objectives import KDObjective
from minillm.token_step import TokenStep
from minillm.training_setup import load_teacher, prepare_training, use_teacher_caches


def main(argv: list[str] | None = None) -> None:
    parser = cli.token_training_parser(__doc__, cli.add_kd_args, cli.add_teacher_cache_args)
    args = cli.validate(parser.parse_args(argv))
    setup = prepare_training(args, "train_kd")
    setup.log.info(f"D = {args.kd_loss} {cli.kd_params(args)}, kd_ratio {args.kd_ratio}")
    # With --teacher-cache the teacher is read from its cache: never loaded (teacher=None).
    teacher, vocab_size = (None, use_teacher_caches(args, setup)) if args.teacher_cache else load_teacher(args, setup)
    objective = KDObjective(teacher, args.kd_ratio, args.kd_loss, vocab_size, args.kd_temperature,
                            args.kd_chunk_size, cli.kd_params(args))
    method = TokenStep(setup, objective, cli.validation_config(args))
    loop = TrainingLoop(cli.loop_config(args, setup.total_steps, setup.sampler.steps_per_epoch), setup, method)
    finish_run(setup, loop.run())


if __name__ == "__main__":
    main()
