"""Word-level knowledge distillation (DeepSpeed entrypoint): train_sft.py's loop with the loss
(1 − kd_ratio)·CE + kd_ratio·D(teacher ‖ student), D any divergence of minillm.losses.

  deepspeed --num_gpus N train_kd.py --model-path STUDENT --teacher-model-path TEACHER_RUN \\
      --data-dir D --save RUN [--kd-loss forward_kl --kd-ratio 0.5 ...]
With --gkd-lambda λ it is GKD: a fraction λ of the steps train on the student's own samples
(scripts/gkd/gkd_base.sh: --kd-ratio 1 --kd-loss js_divergence); with --adaptive-sgo it is
DistiLLM (scripts/distillm/distillm_base.sh: --kd-ratio 1 --kd-loss skew_forward_kl).
See scripts/kd/kd_base.sh. With `--teacher-cache DIR` (tools/cache_teacher.py) the teacher is read
from its cache instead of being loaded and run.
"""
from __future__ import annotations

import argparse

from minillm import args as cli
from minillm.losses import resolve_divergence_params
from minillm.train.loop import TrainingLoop, finish_run
from minillm.train.objectives import KDObjective, sft_objective
from minillm.train.response_source import (
    AdaptiveStudentOutputs,
    GKDResponses,
    ResponseSampler,
)
from minillm.train.setup import (
    load_teacher,
    prepare_training,
    pretraining_term,
    use_teacher_caches,
)
from minillm.train.token_step import TokenStep


def parser() -> argparse.ArgumentParser:
    return cli.token_training_parser(__doc__, cli.add_kd_args, cli.add_teacher_cache_args,
                                     cli.add_generated_response_args,
                                     lambda p: cli.add_pretraining_args(p, own_kd_flags=True))


def main(argv: list[str] | None = None) -> None:
    args = cli.validate(parser().parse_args(argv))
    setup = prepare_training(args, "train_kd")
    setup.log.info(f"D = {args.kd_loss} {cli.kd_params(args)}, kd_ratio {args.kd_ratio}")
    # With --teacher-cache the teacher is read from its cache: never loaded (teacher=None).
    teacher, vocab_size = (None, use_teacher_caches(args, setup)) if args.teacher_cache else load_teacher(args, setup)
    # --kd-ratio 0 is cross-entropy alone: the teacher then never runs on the task data (the
    # control arms, which keep it for their corpus term only).
    objective = sft_objective if args.kd_ratio == 0 else KDObjective(
        teacher, args.kd_ratio, args.kd_loss, vocab_size, args.kd_temperature, args.kd_chunk_size, cli.kd_params(args))
    sampler = ResponseSampler(cli.response_sampling_config(args), args.max_prompt_length, args.seed, setup.dist,
                              setup.tokenizer.eos_token_id, setup.tokenizer.pad_token_id, setup.sync_ranks)
    gkd, adaptive = cli.gkd_config(args), cli.adaptive_sgo_config(args, setup.total_steps)
    responses = (GKDResponses(gkd, sampler, teacher) if gkd is not None
                 else AdaptiveStudentOutputs(adaptive, sampler) if adaptive is not None else None)
    # The corpus term (--ptx-data-dir): in the driver MiniLLM's own, (1 − r)·CE + r·KD with r 0.5,
    # for the control arms, GKD and DistiLLM alike, so that they differ from MiniLLM only on the task.
    corpus_objective = sft_objective if args.ptx_kd_ratio == 0 else KDObjective(
        teacher, args.ptx_kd_ratio, args.ptx_kd_loss, vocab_size, args.kd_temperature, args.kd_chunk_size,
        resolve_divergence_params(args.ptx_kd_loss, {}))
    method = TokenStep(setup, objective, cli.validation_config(args), pretraining_term(args, setup, corpus_objective),
                       responses)
    loop = TrainingLoop(cli.loop_config(args, setup.total_steps, setup.sampler.steps_per_epoch), setup, method)
    finish_run(setup, loop.run())


if __name__ == "__main__":
    main()
