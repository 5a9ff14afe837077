"""Supervised fine-tuning of a causal LM on processed instruction data (DeepSpeed entrypoint).

  deepspeed --num_gpus N train_sft.py --model-path M --data-dir D --save RUN [options]
  python train_sft.py ...            (one process, same code path)
See scripts/sft/*.sh for the paper's recipes and README.md for the embedded default.
"""
from __future__ import annotations

from minillm import args as cli
from minillm.train.loop import TrainingLoop, finish_run
from minillm.train.objectives import sft_objective
from minillm.train.setup import prepare_training
from minillm.train.token_step import TokenStep


def main(argv: list[str] | None = None) -> None:
    args = cli.validate(cli.token_training_parser(__doc__).parse_args(argv))
    setup = prepare_training(cli.setup_config(args, "train_sft"))
    method = TokenStep(setup, sft_objective, cli.validation_config(args))
    loop = TrainingLoop(cli.loop_config(args, setup.total_steps, setup.sampler.steps_per_epoch), setup, method)
    finish_run(setup, loop.run())


if __name__ == "__main__":
    main()
