"""minillm.train.response_source: GKD's and DistiLLM's schedules of generated responses (no model needed)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from minillm import args as cli
from minillm.data.datasets import Example
from minillm.distributed import DistInfo
from minillm.eval.generation import SamplingConfig
from minillm.train.response_source import (
    DATA,
    REPLAY,
    STUDENT,
    TEACHER,
    AdaptiveSGOConfig,
    AdaptiveStudentOutputs,
    GKDConfig,
    GKDResponses,
    ResponseSampler,
)


class StubSampler:
    """Stands in for ResponseSampler: the "sample" of a row is its prompt + [step, micro_step]."""
    seed = 3
    dist = SimpleNamespace(rank=0, device=torch.device("cpu"))

    def __call__(self, model, rows, step, micro_step):
        return [(stream, Example(np.concatenate([ex.tokens[:ex.prompt_len], [step, micro_step]]), ex.prompt_len))
                for stream, ex in rows]


def rows(count: int) -> list:
    return [(k % 2, Example(np.array([7, 8, 9, 10 + k]), 2)) for k in range(count)]


def test_gkd_draws_student_steps_at_rate_lambda_and_keeps_prompts_and_streams():
    source = GKDResponses(GKDConfig(0.25, TEACHER), StubSampler(), teacher="teacher")
    kinds = [source.kind(step) for step in range(2000)]
    assert set(kinds) == {STUDENT, TEACHER} and abs(kinds.count(STUDENT) / 2000 - 0.25) < 0.03
    assert kinds == [source.kind(step) for step in range(2000)]  # a function of (seed, step)
    replaced = source.rows(STUDENT, "student", rows(3), step=5, micro_step=1)
    assert [stream for stream, _ in replaced] == [0, 1, 0]
    assert all(ex.prompt_len == 2 and list(ex.tokens) == [7, 8, 5, 1] for _, ex in replaced)
    assert {GKDResponses(GKDConfig(0.0, DATA), StubSampler(), None).kind(s) for s in range(100)} == {DATA}


def always_emits(token: int) -> GPT2LMHeadModel:
    """A tiny GPT-2 that puts all but e^-100 of its mass on `token` at every position: the final
    layer norm outputs the same vector whatever the input, and the head maps it to logit 100 on
    `token`, 0 elsewhere."""
    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_layer=1, n_head=1, n_embd=4, n_positions=32,
                                       tie_word_embeddings=False))
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        model.lm_head.weight.zero_()
        model.lm_head.weight[token, 0] = 100.0
    return model


def test_generated_responses_come_from_the_model_the_step_kind_names():
    """With a real sampler, a student that always says 5 and a teacher that always says 7: GKD's
    and DistiLLM's student steps train on the student's samples, GKD's teacher steps on the
    teacher's (swapping the two models anywhere on the way fails this)."""
    student, teacher = always_emits(5), always_emits(7)
    sampler = ResponseSampler(SamplingConfig(max_new_tokens=3), max_prompt_length=8, seed=0,
                              dist=DistInfo(0, 1, 0, torch.device("cpu")), eos_token_id=15, pad_token_id=0,
                              sync_ranks=False)

    def responses(generated) -> list[list[int]]:
        return [ex.tokens[ex.prompt_len:].tolist() for _, ex in generated]

    gkd = GKDResponses(GKDConfig(0.5, TEACHER), sampler, teacher)
    assert responses(gkd.rows(STUDENT, student, rows(2), step=0, micro_step=0)) == [[5, 5, 5]] * 2
    assert responses(gkd.rows(TEACHER, student, rows(2), step=0, micro_step=0)) == [[7, 7, 7]] * 2
    distillm = AdaptiveStudentOutputs(AdaptiveSGOConfig(total_steps=10, init_probability=1.0), sampler)
    assert responses(distillm.rows(STUDENT, student, rows(2), step=0, micro_step=0)) == [[5, 5, 5]] * 2
    assert responses(distillm.rows(REPLAY, student, rows(2), step=1, micro_step=0)) == [[5, 5, 5]] * 2
    assert student.training and teacher.training  # each model's mode is restored after sampling


def test_distillm_probability_rises_only_when_the_validation_loss_rises_by_loss_eps():
    source = AdaptiveStudentOutputs(AdaptiveSGOConfig(total_steps=100), StubSampler())
    assert {source.kind(step) for step in range(100)} == {DATA}  # p starts at 0
    for loss, expected in ((2.0, 0.0), (2.05, 0.0), (2.1, 0.1), (2.15, 0.1), (1.0, 0.1), (2.3, 0.2)):
        source.after_validation(loss)
        assert source.probability == expected, loss


def test_distillm_fills_its_buffer_with_fresh_samples_then_replays_it():
    config = AdaptiveSGOConfig(total_steps=1000, init_probability=1.0, capacity=6)
    source = AdaptiveStudentOutputs(config, StubSampler())
    assert source.kind(0) == STUDENT  # the buffer is not full: every draw under p is fresh
    source.rows(STUDENT, "student", rows(4), step=0, micro_step=0)
    source.rows(STUDENT, "student", rows(4), step=1, micro_step=0)
    assert len(source.buffer) == 6  # the oldest two dropped
    kinds = [source.kind(step) for step in range(900, 1000)]  # late: fresh only with p·(1 − step/total)
    assert kinds.count(REPLAY) > 80 and DATA not in kinds
    replayed = source.rows(REPLAY, "student", rows(4), step=950, micro_step=0)
    assert all(any(ex is kept for _, kept in source.buffer) for _, ex in replayed)


def test_distillm_state_round_trips():
    source = AdaptiveStudentOutputs(AdaptiveSGOConfig(total_steps=10, init_probability=0.5), StubSampler())
    source.rows(STUDENT, "student", rows(3), step=2, micro_step=1)
    source.after_validation(1.5)
    shared, own = source.state()
    assert all(isinstance(t, torch.Tensor) for t in own["replay_buffer"]["tokens"])  # loads with weights_only
    copy = AdaptiveStudentOutputs(AdaptiveSGOConfig(total_steps=10), StubSampler())
    copy.restore(shared, own)
    assert (copy.probability, copy.reference_loss) == (0.5, 1.5)
    assert [(s, list(ex.tokens), ex.prompt_len) for s, ex in copy.buffer] == \
        [(s, list(ex.tokens), ex.prompt_len) for s, ex in source.buffer]


def test_a_teacher_cache_cannot_serve_generated_responses():
    parser = cli.token_training_parser("train_kd", cli.add_kd_args, cli.add_teacher_cache_args,
                                       cli.add_generated_response_args)
    base = ["--model-path", "m", "--data-dir", "d", "--save", "s", "--teacher-model-path", "t",
            "--teacher-cache", "c", "--deepspeed-config", "configs/deepspeed/zero1_fp32.json"]
    for generated in (["--gkd-lambda", "0.5"], ["--adaptive-sgo"], ["--gkd-off-policy", "teacher"]):
        with pytest.raises(SystemExit, match="cannot score responses generated during training"):
            cli.validate(parser.parse_args(base + generated))
    cli.validate(parser.parse_args(base))  # the cache alone is fine


def test_training_responses_and_validation_sample_with_their_own_flags():
    """--response-temperature / --response-max-new-tokens draw the training responses (TRL's GKD:
    0.9, 128 tokens); --temperature / --max-new-tokens stay the validation's, so that matching a
    peer's sampling does not change which checkpoint is picked."""
    parser = cli.token_training_parser("train_kd", cli.add_kd_args, cli.add_generated_response_args)
    base = ["--model-path", "m", "--data-dir", "d", "--save", "s", "--teacher-model-path", "t",
            "--max-length", "64", "--max-prompt-length", "32", "--deepspeed-config", "configs/deepspeed/zero1_fp32.json"]

    def parse(*extra: str):
        return cli.validate(parser.parse_args(base + list(extra)))

    args = parse("--gkd-lambda", "0.5", "--response-temperature", "0.9", "--response-max-new-tokens", "20",
                 "--temperature", "0.7")
    assert cli.response_sampling_config(args) == SamplingConfig(max_new_tokens=20, temperature=0.9)
    assert cli.validation_config(args).sampling == SamplingConfig(max_new_tokens=32, temperature=0.7)
    args = parse("--adaptive-sgo")  # defaults: pure ancestral, the whole response budget
    assert cli.response_sampling_config(args) == cli.validation_config(args).sampling == SamplingConfig(max_new_tokens=32)
    # --temperature once set both: alone with generated responses it is refused, not reinterpreted.
    with pytest.raises(SystemExit, match="--temperature 0.9 sets only the validation's sampling"):
        parse("--gkd-lambda", "0.5", "--temperature", "0.9")
    assert parse("--temperature", "0.9").temperature == 0.9  # plain KD generates nothing: fine
    with pytest.raises(SystemExit, match=r"--response-max-new-tokens \(33\) must be in \[0, .* = 32\]"):
        parse("--gkd-lambda", "0.5", "--response-max-new-tokens", "33")
