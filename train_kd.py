"""Word-level knowledge distillation (DeepSpeed entrypoint): train_sft.py's loop with the loss
(1 − kd_ratio)·CE + kd_ratio·D(teacher ‖ student), D any divergence of minillm.losses.

  deepspeed --num_gpus N train_kd.py --model-path STUDENT --teacher-model-path TEACHER_RUN \\
      --data-dir D --save RUN [--kd-loss forward_kl --kd-ratio 0.5 ...]
With --gkd-lambda λ it is GKD: a fraction λ of the steps train on the student's own samples
(scripts/gkd/gkd_base.sh: --kd-ratio 1 --kd-loss js_divergence); with --adaptive-sgo it is
DistiLLM (scripts/distillm/distillm_base.sh: --kd-ratio 1 --kd-loss skew_forward_kl).
See scripts/kd/kd_base.sh. With `--teacher-cache DIR` (tools/cache_teacher.py) the teacher is read
from its cache instead of being loaded and run. With `--cross-tokenizer uld|aligned` the teacher
may have another tokenizer (--teacher-tokenizer): D is then a cross-tokenizer distance over the
same text re-tokenized for the teacher (docs/cross-tokenizer.md); with --gkd-lambda 1 on the
student's own samples.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from minillm import args as cli
from minillm.data.cross_tokenizer import TextCodec, cached_vocabulary_map
from minillm.losses import resolve_divergence_params
from minillm.modeling import max_positions
from minillm.train.loop import TrainingLoop, finish_run
from minillm.train.objectives import CrossTokenizerObjective, KDObjective, sft_objective
from minillm.train.response_source import (
    AdaptiveStudentOutputs,
    GKDResponses,
    ResponseSampler,
)
from minillm.train.setup import (
    TeacherConfig,
    TrainingSetup,
    load_cross_tokenizer_teacher,
    load_teacher,
    prepare_training,
    pretraining_term,
    use_teacher_caches,
)
from minillm.train.token_step import TokenStep


def parser() -> argparse.ArgumentParser:
    return cli.token_training_parser(__doc__, cli.add_kd_args, cli.add_teacher_cache_args,
                                     cli.add_generated_response_args,
                                     cli.add_pretraining_args)


def main(argv: list[str] | None = None) -> None:
    args = cli.validate(parser().parse_args(argv))
    setup = prepare_training(cli.setup_config(args, "train_kd"))
    teacher_config = cli.teacher_config(args)
    if args.cross_tokenizer:
        objective = cross_tokenizer_objective(args, teacher_config, setup)
        teacher, vocab_size = objective.teacher, None  # the teacher serves the task loss only
    else:
        setup.log.info(f"D = {args.kd_loss} {cli.kd_params(args)}, kd_ratio {args.kd_ratio}")
        # With --teacher-cache the teacher is read from its cache: never loaded (teacher=None).
        teacher, vocab_size = ((None, use_teacher_caches(teacher_config, setup)) if teacher_config.cache
                               else load_teacher(teacher_config, setup))
        # --kd-ratio 0 is cross-entropy alone: the teacher then never runs on the task data (the
        # control arms, which keep it for their corpus term only).
        objective = sft_objective if args.kd_ratio == 0 else KDObjective(
            teacher, args.kd_ratio, args.kd_loss, vocab_size, args.kd_temperature, args.kd_chunk_size,
            cli.kd_params(args))
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
    corpus_term = pretraining_term(cli.corpus_config(args), teacher_config, setup, corpus_objective)
    method = TokenStep(setup, objective, cli.validation_config(args), corpus_term, responses)
    loop = TrainingLoop(cli.loop_config(args, setup.total_steps, setup.sampler.steps_per_epoch), setup, method)
    finish_run(setup, loop.run())


def cross_tokenizer_objective(args, teacher_config: TeacherConfig, setup: TrainingSetup) -> CrossTokenizerObjective:
    """--cross-tokenizer: the teacher with its own tokenizer, and (aligned) the map of the vocabulary
    entries both tokenizers spell alike, cached in the run folder as vocabulary_map.json."""
    teacher, teacher_tokenizer = load_cross_tokenizer_teacher(teacher_config, setup)
    vocabulary = None
    if args.cross_tokenizer == "aligned":
        student_ids, teacher_ids = cached_vocabulary_map(setup.tokenizer, teacher_tokenizer,
                                                         Path(args.save) / "vocabulary_map.json")
        vocabulary = (torch.from_numpy(student_ids), torch.from_numpy(teacher_ids))
        setup.log.info(f"vocabulary map: {len(student_ids)} entries spelled alike by both tokenizers (student "
                       f"{len(setup.tokenizer)}, teacher {len(teacher_tokenizer)} tokens)")
    described = (f"aligned tokens: {args.kd_loss} {cli.kd_params(args)} over the shared entries + ULD over the rest"
                 if vocabulary is not None else "ULD over the i-th response tokens")
    setup.log.info(f"cross-tokenizer D = {described}, kd_ratio {args.kd_ratio}")
    return CrossTokenizerObjective(
        teacher, TextCodec(setup.tokenizer), TextCodec(teacher_tokenizer), args.cross_tokenizer, args.kd_ratio,
        len(setup.tokenizer), len(teacher_tokenizer), max_positions(teacher), vocabulary, args.kd_loss,
        args.kd_temperature, args.kd_chunk_size, cli.kd_params(args) if vocabulary is not None else {})


if __name__ == "__main__":
    main()
