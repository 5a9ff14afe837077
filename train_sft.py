"""Supervised fine-tuning of a causal LM on processed instruction data (DeepSpeed entrypoint).

  deepspeed --num_gpus N train_sft.py --model-path M --data-dir D --save RUN [options]
  python train_sft.py ...            (one process, same code path)
See scripts/sft/*.sh for the paper's recipes and README.md for the embedded default.
"""
from __future__ import annotations

import argparse
import json

from minillm import args as cli
from minillm.fileio import atomic_write_json
from minillm.training_setup import prepare_training
from minillm.trainer import TokenTrainer, sft_objective


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_args(parser)
    cli.add_data_args(parser)
    cli.add_training_args(parser)
    cli.add_run_args(parser)
    cli.add_generation_args(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = cli.validate(build_parser().parse_args(argv))
    setup = prepare_training(args, "train_sft")
    trainer = TokenTrainer(args, setup, sft_objective)
    state = trainer.train()
    if setup.dist.is_main and state.step == trainer.total_steps:
        summary = {"steps": state.step, "tokens": state.tokens, "supervised_tokens": state.supervised_tokens,
                   "train_seconds": round(state.train_seconds, 1), "evaluations": state.history,
                   "best": json.loads((setup.log.run_dir / "best.json").read_text())}
        atomic_write_json(setup.log.run_dir / "final.json", summary)
        setup.log.info(f"done: {state.step} steps; best: {json.dumps(summary['best'])}")
    setup.log.close()


if __name__ == "__main__":
    main()
