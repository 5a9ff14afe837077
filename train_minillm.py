"""MiniLLM: distil a teacher into a student by minimising the reverse KL KL(q_student ‖ p_teacher)
with policy gradient (ref §6; DeepSpeed entrypoint).

  deepspeed --num_gpus N train_minillm.py --model-path STUDENT_INIT --teacher-model-path TEACHER_RUN \\
      --data-dir PROMPT_DATA --ptx-data-dir CORPUS --save RUN [options]
Defaults are the paper's: 256 rollouts per collection, 4 PPO epochs, mini-batch 64, α = 0.2,
γ = 0.95, lr 5e-6 constant after 100 warm-up steps, 5000 steps. See scripts/minillm/train_base_xl.sh.
"""
from __future__ import annotations

from minillm import args as cli
from minillm.data.datasets import TokenDataset
from minillm.objectives import KDObjective
from minillm.ppo.trainer import MiniLLMTrainer
from minillm.trainer import finish_run
from minillm.training_setup import check_processed_data, load_teacher, prepare_training


def main(argv: list[str] | None = None) -> None:
    parser = cli.token_training_parser(__doc__, cli.add_kd_args, cli.add_minillm_args)
    args = cli.validate(parser.parse_args(argv))
    setup = prepare_training(args, "train_minillm")
    teacher, vocab_size = load_teacher(args, setup)
    ptx = ptx_objective = None
    if args.ptx_data_dir:
        ptx = TokenDataset(args.ptx_data_dir, "train", args.max_length)
        check_processed_data(ptx, setup.tokenizer, args.tokenizer_path or args.model_path, setup.log)
        ptx_objective = KDObjective(teacher, args.kd_ratio, args.kd_loss, vocab_size, args.kd_temperature,
                                    args.kd_chunk_size, cli.kd_params(args))
    trainer = MiniLLMTrainer(args, setup, teacher, vocab_size, setup.train_set, ptx, ptx_objective)
    finish_run(setup, trainer.train())


if __name__ == "__main__":
    main()
