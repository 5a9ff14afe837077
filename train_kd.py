"""Word-level knowledge distillation (DeepSpeed entrypoint): train_sft.py's loop with the loss
(1 − kd_ratio)·CE + kd_ratio·D(teacher ‖ student), D any divergence of minillm.losses.

  deepspeed --num_gpus N train_kd.py --model-path STUDENT --teacher-model-path TEACHER_RUN \\
      --data-dir D --save RUN [--kd-loss forward_kl --kd-ratio 0.5 ...]
See scripts/kd/kd_base.sh.
"""
from __future__ import annotations

from minillm import args as cli
from minillm.checkpoint import resolve_checkpoint
from minillm.engine import precision_dtype
from minillm.modeling import check_same_tokenizer, load_model, load_tokenizer
from minillm.objectives import KDObjective
from minillm.trainer import TokenTrainer, finish_run
from minillm.training_setup import prepare_training


def main(argv: list[str] | None = None) -> None:
    args = cli.validate(cli.token_training_parser(__doc__, cli.add_kd_args).parse_args(argv))
    setup = prepare_training(args, "train_kd")
    teacher_path = resolve_checkpoint(args.teacher_model_path, args.teacher_pick)
    vocab_size = check_same_tokenizer(setup.tokenizer, load_tokenizer(teacher_path))
    # A frozen full replica per rank, in the engine's precision (not partitioned under ZeRO-3).
    teacher = load_model(teacher_path, precision_dtype(setup.ds_config), setup.dist.device)
    setup.log.info(f"teacher {teacher_path}: {sum(p.numel() for p in teacher.parameters()) / 1e6:.2f}M parameters; "
                   f"D = {args.kd_loss} {cli.kd_params(args)}, kd_ratio {args.kd_ratio}")
    objective = KDObjective(teacher, args.kd_ratio, args.kd_loss, vocab_size, args.kd_temperature,
                            args.kd_chunk_size, cli.kd_params(args))
    finish_run(setup, TokenTrainer(args, setup, objective).train())


if __name__ == "__main__":
    main()
