"""The KV-cache sampler: agreement with full forwards and HF generate, filtering, seeding."""
from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from minillm.eval.generation import SamplingConfig, sample, warp_logits

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


def test_without_mixing_the_teacher_does_not_change_the_samples(model, teacher):
    ids, mask = left_padded(PROMPTS)
    alone = sample(model, ids, mask, SamplingConfig(max_new_tokens=10), EOS, PAD, generator=torch.Generator().manual_seed(5))
    paired = sample(model, ids, mask, SamplingConfig(max_new_tokens=10), EOS, PAD, teacher=teacher, teacher_mix=0.0,
                    generator=torch.Generator().manual_seed(5))
    assert torch.equal(alone.tokens, paired.tokens)


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
