"""The KV-cache sampler: agreement with full forwards and HF generate, filtering, seeding."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import minillm.args as cli
from minillm.eval import generation
from minillm.eval.generation import SamplingConfig, sample, score_with_teacher, token_entropy, warp_logits

EOS, PAD, VOCAB = 1, 1, 37


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=32, n_positions=64,
                        bos_token_id=EOS, eos_token_id=EOS)
    return GPT2LMHeadModel(config).eval()


def left_padded(rows: list[list[int]]):
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), PAD)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row):] = torch.tensor(row)
        mask[i, width - len(row):] = 1
    return ids, mask


PROMPTS = [[5, 9, 12, 3, 7], [4, 4], [30, 2, 8]]


def test_greedy_equals_hf_generate_per_prompt(model):
    """top_k=1 is greedy: batched, left-padded, with finished rows dropped mid-way, the loop must
    produce what HF generate produces for each prompt alone."""
    ids, mask = left_padded(PROMPTS)
    out = sample(model, ids, mask, SamplingConfig(max_new_tokens=12, top_k=1), EOS, PAD)
    for row, prompt in enumerate(PROMPTS):
        reference = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12,
                                   eos_token_id=EOS, pad_token_id=PAD)[0, len(prompt):]
        length = int(out.lengths[row])
        assert out.tokens[row, :length].tolist() == reference[:length].tolist()


def test_eos_ends_a_row_and_pads_after_it(model):
    # A model whose bias forces EOS at the third step of every row.
    ids, mask = left_padded(PROMPTS)
    calls = {"n": 0}

    def forward_hook(module, args, kwargs, output):
        calls["n"] += 1
        if calls["n"] == 3:
            output.logits[..., EOS] = 1e4
        return output

    handle = model.register_forward_hook(forward_hook, with_kwargs=True)
    try:
        out = sample(model, ids, mask, SamplingConfig(max_new_tokens=8), EOS, PAD,
                     generator=torch.Generator().manual_seed(0))
    finally:
        handle.remove()
    assert out.lengths.tolist() == [3, 3, 3]
    assert (out.tokens[:, 2] == EOS).all() and (out.tokens[:, 3:] == PAD).all()
    assert calls["n"] == 3  # stopped as soon as every row finished


def test_same_seed_same_samples_and_different_seed_differs(model):
    ids, mask = left_padded(PROMPTS)
    config = SamplingConfig(max_new_tokens=10)
    a = sample(model, ids, mask, config, EOS, PAD, generator=torch.Generator().manual_seed(10))
    b = sample(model, ids, mask, config, EOS, PAD, generator=torch.Generator().manual_seed(10))
    c = sample(model, ids, mask, config, EOS, PAD, generator=torch.Generator().manual_seed(20))
    assert torch.equal(a.tokens, b.tokens)
    assert not torch.equal(a.tokens, c.tokens)


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept_k = warp_logits(logits, SamplingConfig(top_k=2)).isfinite()
    assert kept_k.tolist() == [[True, True, False, False]]
    # Nucleus 0.8: 0.5 + 0.3 reaches it, so exactly the top two survive.
    kept_p = warp_logits(logits, SamplingConfig(top_p=0.8)).isfinite()
    assert kept_p.tolist() == [[True, True, False, False]]
    kept_p = warp_logits(logits, SamplingConfig(top_p=0.81)).isfinite()
    assert kept_p.tolist() == [[True, True, True, False]]
    hot = warp_logits(logits, SamplingConfig(temperature=2.0))
    assert torch.allclose(hot, logits / 2)


def test_no_repeat_ngram_blocks_repeats(model):
    ids, mask = left_padded([[3, 4, 3]])
    # Greedy with bigram blocking: the bigram (3, 4) already occurred, so 4 can never follow 3.
    out = sample(model, ids, mask, SamplingConfig(max_new_tokens=20, top_k=1, no_repeat_ngram_size=2), EOS, PAD)
    sequence = [3, 4, 3] + out.tokens[0, : int(out.lengths[0])].tolist()
    bigrams = list(zip(sequence, sequence[1:]))
    assert len(bigrams) == len(set(bigrams))


def test_bad_sampling_settings_are_refused():
    with pytest.raises(ValueError, match="top_p"):
        SamplingConfig(top_p=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(temperature=0)


@pytest.fixture(scope="module")
def teacher():
    torch.manual_seed(1)
    config = GPT2Config(vocab_size=VOCAB + 3, n_layer=2, n_head=2, n_embd=48, n_positions=64,
                        bos_token_id=EOS, eos_token_id=EOS)  # a padded teacher vocabulary
    return GPT2LMHeadModel(config).eval()


@pytest.mark.parametrize("mix", [0.0, 0.2, 1.0])
def test_recorded_logprobs_equal_a_full_forward_over_the_samples(model, teacher, mix):
    ids, mask = left_padded(PROMPTS)
    out = sample(model, ids, mask, SamplingConfig(max_new_tokens=10), EOS, PAD, teacher=teacher,
                 teacher_mix=mix, record_logprobs=True, generator=torch.Generator().manual_seed(3))
    response_mask = torch.arange(10)[None, :] < out.lengths[:, None]
    full_ids = torch.cat([ids, out.tokens], 1)
    full_mask = torch.cat([mask, response_mask.long()], 1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    for net, recorded in ((model, out.student_logprobs), (teacher, out.teacher_logprobs)):
        logits = net(input_ids=full_ids, attention_mask=full_mask, position_ids=positions).logits[:, :, :VOCAB]
        expected = logits[:, ids.shape[1] - 1:-1].log_softmax(-1).gather(2, out.tokens[:, :, None]).squeeze(2)
        torch.testing.assert_close(recorded[response_mask], expected[response_mask], rtol=1e-4, atol=1e-4)
        assert (recorded[~response_mask] == 0).all()


def test_token_entropy_closed_forms():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [5.0, float("-inf"), float("-inf"), float("-inf")],
                           [1.0, 2.0, 3.0, -1.0]])
    expected = torch.distributions.Categorical(logits=logits[2]).entropy()
    torch.testing.assert_close(token_entropy(logits), torch.stack([torch.log(torch.tensor(4.0)), torch.tensor(0.0),
                                                                   expected]))


def test_recorded_entropy_is_the_models_own_at_each_sampled_token(model):
    """The entropy recorded while sampling equals that of a full forward over the samples, and
    recording it changes no token."""
    ids, mask = left_padded(PROMPTS)
    config = SamplingConfig(max_new_tokens=10, temperature=1.5)  # recorded at temperature 1, whatever the sampling
    out = sample(model, ids, mask, config, EOS, PAD, record_entropy=True, generator=torch.Generator().manual_seed(4))
    plain = sample(model, ids, mask, config, EOS, PAD, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out.tokens, plain.tokens) and plain.entropy is None
    response_mask = torch.arange(10)[None, :] < out.lengths[:, None]
    full_ids = torch.cat([ids, out.tokens], 1)
    full_mask = torch.cat([mask, response_mask.long()], 1)
    positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=full_ids, attention_mask=full_mask, position_ids=positions).logits
    expected = token_entropy(logits[:, ids.shape[1] - 1:-1])
    torch.testing.assert_close(out.entropy[response_mask], expected[response_mask], rtol=1e-4, atol=1e-4)
    assert (out.entropy[~response_mask] == 0).all()


def test_without_mixing_the_teacher_does_not_change_the_samples(model, teacher):
    ids, mask = left_padded(PROMPTS)
    alone = sample(model, ids, mask, SamplingConfig(max_new_tokens=10), EOS, PAD, generator=torch.Generator().manual_seed(5))
    paired = sample(model, ids, mask, SamplingConfig(max_new_tokens=10), EOS, PAD, teacher=teacher, teacher_mix=0.0,
                    generator=torch.Generator().manual_seed(5))
    assert torch.equal(alone.tokens, paired.tokens)


def test_without_mixing_the_teacher_runs_once_over_the_finished_rows(model, teacher):
    """α = 0: the student samples alone and the teacher scores its samples in ONE forward, whose
    log-probabilities and kept logits are a full forward's over [prompt | response] exactly."""
    ids, mask = left_padded(PROMPTS)
    calls, kept = [], []
    handle = teacher.register_forward_hook(lambda *args: calls.append(1))
    try:
        out = sample(model, ids, mask, SamplingConfig(max_new_tokens=10), EOS, PAD, teacher=teacher, teacher_mix=0.0,
                     record_logprobs=True, generator=torch.Generator().manual_seed(4),
                     keep_teacher_logits=lambda rows, steps, logits: kept.append((rows, steps, logits)))
    finally:
        handle.remove()
    assert len(calls) == 1 and len(kept) == 1
    width = int(out.lengths.max())
    rows, steps, logits = kept[0]
    assert rows.tolist() == [0, 1, 2] and steps == slice(0, width) and logits.shape == (3, width, VOCAB + 3)
    response_mask = torch.arange(width)[None, :] < out.lengths[:, None]
    full_mask = torch.cat([mask, response_mask.long()], 1)
    reference = teacher(input_ids=torch.cat([ids, out.tokens[:, :width]], 1), attention_mask=full_mask,
                        position_ids=(full_mask.cumsum(-1) - 1).clamp(min=0)).logits[:, ids.shape[1] - 1:-1]
    torch.testing.assert_close(logits, reference, rtol=1e-5, atol=1e-5)
    expected = reference[..., :VOCAB].log_softmax(-1).gather(2, out.tokens[:, :width, None]).squeeze(2)
    torch.testing.assert_close(out.teacher_logprobs[:, :width][response_mask], expected[response_mask],
                               rtol=1e-5, atol=1e-5)
    assert (out.teacher_logprobs[:, :width][~response_mask] == 0).all() and (out.teacher_logprobs[:, width:] == 0).all()


def test_scoring_in_several_passes_equals_one_pass(model, teacher, monkeypatch):
    ids, mask = left_padded(PROMPTS)
    out = sample(model, ids, mask, SamplingConfig(max_new_tokens=10), EOS, PAD, generator=torch.Generator().manual_seed(6))
    whole = score_with_teacher(teacher, ids, mask, out.tokens, out.lengths, VOCAB)
    monkeypatch.setattr(generation, "SCORING_LOGITS_PER_PASS", 1)  # one row per pass
    torch.testing.assert_close(score_with_teacher(teacher, ids, mask, out.tokens, out.lengths, VOCAB), whole,
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("student_name", "mix"), [("model", 0.2), ("llama", 0.0)])
def test_the_preallocated_cache_computes_what_the_concatenated_cache_computes(request, teacher, monkeypatch,
                                                                              student_name, mix):
    """The reference loop: the same sampler over HF's DynamicCache (grown by concatenation at every
    step). Bit for bit the same tokens, log-probabilities and kept teacher logits, with rows ending
    (and dropped from the cache) at different steps."""
    student = request.getfixturevalue(student_name)
    ids, mask = left_padded(PROMPTS + [[6]])

    def run(seed):
        kept = []
        out = sample(student, ids, mask, SamplingConfig(max_new_tokens=24), EOS, PAD, teacher=teacher, teacher_mix=mix,
                     record_logprobs=True, generator=torch.Generator().manual_seed(seed),
                     keep_teacher_logits=lambda rows, steps, x: kept.append((rows, steps, x)))
        return out, kept

    early = 0
    for seed in range(3):
        preallocated, kept = run(seed)
        with monkeypatch.context() as patch:
            patch.setattr(generation, "preallocated_cache", lambda net, capacity: DynamicCache(config=net.config))
            concatenated, reference_kept = run(seed)
        for name in ("tokens", "lengths", "student_logprobs", "teacher_logprobs"):
            assert torch.equal(getattr(preallocated, name), getattr(concatenated, name)), name
        for (rows, steps, x), (reference_rows, reference_steps, y) in zip(kept, reference_kept, strict=True):
            assert torch.equal(rows, reference_rows) and steps == reference_steps and torch.equal(x, y)
        early += int((preallocated.lengths < 24).sum())
    assert early > 0  # rows were dropped from the cache mid-way


def test_full_mixing_samples_from_the_teacher(model, teacher):
    """With α = 1 and a teacher that is certain, every drawn token is the teacher's choice."""
    ids, mask = left_padded(PROMPTS)
    hook = teacher.lm_head.register_forward_hook(lambda m, a, out: torch.where(
        torch.arange(out.shape[-1]) == 7, 1e4, -1e4).expand_as(out).to(out.dtype))
    try:
        out = sample(model, ids, mask, SamplingConfig(max_new_tokens=6), EOS, PAD, teacher=teacher, teacher_mix=1.0,
                     generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert (out.tokens == 7).all()


# Static / compiled decoding: the same tokens as the eager loop for the same seed. The eager loop
# drops finished rows; the static one keeps them but hands the sampler the same sub-batch, so
# torch.multinomial consumes the generator identically and only float rounding may differ.

@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(2)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                         bos_token_id=EOS, eos_token_id=EOS, pad_token_id=PAD)
    return LlamaForCausalLM(config).eval()


def assert_same_samples(reference, other):
    assert torch.equal(reference.tokens, other.tokens) and torch.equal(reference.lengths, other.lengths)
    for name in ("student_logprobs", "teacher_logprobs"):
        if getattr(reference, name) is not None:
            torch.testing.assert_close(getattr(other, name), getattr(reference, name), rtol=1e-5, atol=1e-5)


STATIC_CASES = {  # student, teacher, sampling settings, sync_ranks
    "gpt2 alone": ("model", None, {}, False),
    "gpt2 + gpt2 teacher, mixed": ("model", "teacher", {}, False),
    "llama + gpt2 teacher, mixed, top-p, no-repeat": ("llama", "teacher", {"top_p": 0.9, "no_repeat_ngram_size": 2}, False),
    "gpt2 + llama teacher, mixed, top-k, rows kept (sync_ranks)": ("model", "llama", {"top_k": 20}, True),
}


@pytest.mark.parametrize("case", STATIC_CASES)
def test_static_cache_draws_the_same_tokens_as_the_eager_loop(request, case):
    student, teacher, settings, sync = STATIC_CASES[case]
    student = request.getfixturevalue(student)
    teacher = request.getfixturevalue(teacher) if teacher else None
    ids, mask = left_padded(PROMPTS + [[6]])  # prompts of 5, 2, 3 and 1 tokens
    steps, early = 24, 0
    for seed in range(4):
        outs, kept = {}, {"eager": [], "static": []}
        for decode in ("eager", "static"):
            outs[decode] = sample(student, ids, mask, SamplingConfig(max_new_tokens=steps, decode=decode, **settings),
                                  EOS, PAD, teacher=teacher, teacher_mix=0.2 if teacher else 0.0,
                                  record_logprobs=True, generator=torch.Generator().manual_seed(seed),
                                  sync_ranks=sync, keep_teacher_logits=(lambda rows, steps, x, into=kept[decode]:
                                                                        into.append((rows, x))) if teacher else None)
        assert_same_samples(outs["eager"], outs["static"])
        for (rows, logits), (static_rows, static_logits) in zip(kept["eager"], kept["static"], strict=True):
            assert torch.equal(rows, static_rows)
            torch.testing.assert_close(static_logits, logits, rtol=1e-5, atol=1e-5)
        early += int((outs["eager"].lengths < steps).sum())
    assert early > 0  # some rows ended with EOS while others went on: the dropping was exercised


def test_compiled_step_is_one_graph_that_draws_the_same_tokens(model, teacher, monkeypatch):
    """torch.compile's own tracing (fullgraph: no graph break) with the aot_eager backend: inductor's
    code generation costs ≈ 20 s per shape on 2 CPU cores, and CPU speed is not the target."""
    from torch._dynamo.utils import counters

    from minillm.eval import generation
    compiled = functools.cache(lambda device_type: torch.compile(generation._decode_step, fullgraph=True,
                                                                 backend="aot_eager"))
    monkeypatch.setattr(generation, "_compiled_decode_step", compiled)
    torch._dynamo.reset()
    counters.clear()
    ids, mask = left_padded(PROMPTS)
    for seed in (0, 1):  # the second call, with a fresh cache, must reuse the graphs
        outs = [sample(model, ids, mask, SamplingConfig(max_new_tokens=12, decode=decode), EOS, PAD, teacher=teacher,
                       teacher_mix=0.2, record_logprobs=True, generator=torch.Generator().manual_seed(seed))
                for decode in ("eager", "compiled")]
        assert_same_samples(*outs)
    assert counters["stats"]["unique_graphs"] == 2  # one per model


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs (mode='reduce-overhead') need a GPU")
def test_compiled_decoding_on_cuda_draws_the_same_tokens(model, teacher):
    ids, mask = (x.cuda() for x in left_padded(PROMPTS))
    student, mixer = copy.deepcopy(model).cuda(), copy.deepcopy(teacher).cuda()
    outs = [sample(student, ids, mask, SamplingConfig(max_new_tokens=12, decode=decode), EOS, PAD,
                   teacher=mixer, teacher_mix=0.2, record_logprobs=True,
                   generator=torch.Generator("cuda").manual_seed(0))
            for decode in ("eager", "compiled")]
    assert_same_samples(*outs)


def test_unknown_decode_mode_is_refused():
    with pytest.raises(ValueError, match="decode"):
        SamplingConfig(decode="graphs")


def test_compile_decode_flag_reaches_every_sampler_config_and_refuses_zero3():
    parser = cli.token_training_parser("", cli.add_teacher_args, cli.add_pretraining_args, cli.add_minillm_args)
    configs = Path(__file__).resolve().parents[1] / "configs" / "deepspeed"
    required = ["--model-path", "m", "--data-dir", "d", "--save", "s", "--teacher-model-path", "t",
                "--max-new-tokens", "8"]
    zero1, zero3 = (["--deepspeed-config", str(configs / name)] for name in ("zero1_fp32.json", "zero3_fp32.json"))
    for flags, decode in (([], "eager"), (["--compile-decode"], "compiled")):
        args = cli.validate(parser.parse_args(required + zero1 + flags))
        assert cli.sampling_config(args).decode == decode  # evaluation, generation tools
        assert cli.validation_config(args).sampling.decode == decode
        assert cli.on_policy_config(args).decode == decode  # MiniLLM's rollouts
    cli.validate(parser.parse_args(required + zero3))
    with pytest.raises(SystemExit, match="--compile-decode cannot run under ZeRO-3"):
        cli.validate(parser.parse_args(required + zero3 + ["--compile-decode"]))
