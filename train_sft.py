"""Supervised fine-tuning of a causal LM on processed instruction data (DeepSpeed entrypoint).

  deepspeed --num_gpus N train_sft.py --model-path M --data-dir D --save RUN [options]
  python train_sft.py ...            (one process, same code path)
See scripts/sft/*.sh for the paper's recipes and README.md for the embedded default.
"""
from __future__ import annotations

from minillm import args as cli
from minillm.objectives import sft_objective
from minillm.trainer import TokenTrainer, finish_run
from minillm.training_setup import prepare_training


def main(argv: list[str] | None = None) -> None:
    args = cli.validate(cli.token_training_parser(__doc__).parse_args(argv))
    setup = prepare_training(args, "train_sft")
    finish_run(setup, TokenTrainer(args, setup, sft_objective).train())


if __name__ == "__main__":
    main()
