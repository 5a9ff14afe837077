"""Distillation across tokenizers: ULD and the aligned-token distance (minillm.losses), what tokens
spell and how two tokenizations line up (minillm.data.cross_tokenizer), bits per character.

The two conventions are built by hand from known pieces, so the expected tokens are known: a
GPT-2-style byte-level BPE (`Ġ` for a space) and a SentencePiece-style BPE (`▁`, `<0xXX>` byte
fallback, a dummy-prefix space; tools/convert_llama2c.py's tokenizer, as the stories260K teacher).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2TokenizerFast
from world import load_tool

from minillm.data.cross_tokenizer import (
    TextCodec,
    byte_level_alphabet,
    cached_vocabulary_map,
    pair_batch,
    ResponseTokens,
    positional_pairs,
    shared_spans,
    starts_pairs,
    token_surfaces,
    vocabulary_map,
)
from minillm.data.datasets import Example, collate_sft
from minillm.losses import (
    DIVERGENCES,
    aligned_vocabulary_distance,
    cross_tokenizer_divergence,
    universal_logit_distance,
)
from minillm.metrics import bits_per_character

WORDS = ["The", " dog", " ran", " happily", " home", "."]


def _chains(word: str) -> list[str]:
    """The prefixes of `word` from two characters on: merging them in order builds the word."""
    return [word[:k] for k in range(2, len(word) + 1)]


@pytest.fixture(scope="module")
def byte_level():
    """GPT-2-style: every word of WORDS one token (`Ġhappily`), all else bytes; EOS <|endoftext|>."""
    alphabet = {char: byte for char, byte in byte_level_alphabet().items()}
    vocab = {"<|endoftext|>": 0, **{char: 1 + byte for char, byte in sorted(alphabet.items(), key=lambda x: x[1])}}
    merges = []
    for word in WORDS:
        spelled = "".join(next(c for c, b in alphabet.items() if b == byte) for byte in word.encode())
        for prefix in _chains(spelled):
            merges.append((prefix[:-1], prefix[-1]))
            vocab.setdefault(prefix, len(vocab))
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    fast = GPT2TokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.pad_token = fast.eos_token
    return fast


@pytest.fixture(scope="module")
def sentencepiece():
    """SentencePiece-style: `▁happily` is three pieces (`▁hap`, `pi`, `ly`); `a` exists both as a
    piece and as the byte-fallback token `<0x61>`."""
    convert = load_tool("convert_llama2c")
    pieces = ["<unk>", "<s>", "</s>", *[f"<0x{b:02X}>" for b in range(256)], "▁", *sorted(set("Thedogranhpilym.a"))]
    for word in ["▁The", "▁dog", "▁ran", "▁hap", "pi", "ly", "▁home"]:
        pieces += [p for p in _chains(word) if p not in pieces]
    scores = [-float(i) for i in range(len(pieces))]
    tokenizer = convert.build_tokenizer(pieces, scores, model_max_length=256)
    return tokenizer


def test_surfaces_spell_the_text_in_both_conventions(byte_level, sentencepiece):
    surfaces = token_surfaces(byte_level)
    assert surfaces[byte_level.convert_tokens_to_ids("Ġhappily")] == b" happily"
    assert surfaces[byte_level.eos_token_id] is None
    surfaces = token_surfaces(sentencepiece)
    assert surfaces[sentencepiece.convert_tokens_to_ids("▁dog")] == b" dog"
    assert surfaces[sentencepiece.convert_tokens_to_ids("<0x0A>")] == b"\n"
    assert surfaces[sentencepiece.bos_token_id] is None and surfaces[sentencepiece.eos_token_id] is None
    for tokenizer in (byte_level, sentencepiece):
        codec = TextCodec(tokenizer)
        text = "The dog ran happily home."
        assert codec.spell(tokenizer(text)["input_ids"])[codec.lead:] == text.encode()
    assert (TextCodec(byte_level).lead, TextCodec(sentencepiece).lead) == (0, 1)  # the dummy-prefix space


def test_vocabulary_map_pairs_entries_spelled_alike(byte_level, sentencepiece):
    student_ids, teacher_ids = vocabulary_map(byte_level, sentencepiece)
    pairs = {byte_level.convert_ids_to_tokens(int(s)): sentencepiece.convert_ids_to_tokens(int(t))
             for s, t in zip(student_ids, teacher_ids)}
    assert pairs["Ġdog"] == "▁dog" and pairs["Ġhome"] == "▁home" and pairs["Ġ"] == "▁"
    assert pairs["a"] == "a", "the piece, not the byte-fallback <0x61>"
    assert pairs["Ċ"] == "<0x0A>", "a byte-fallback token where no piece spells the byte"
    assert "Ġhappily" not in pairs and "<|endoftext|>" not in pairs
    assert len(set(student_ids.tolist())) == len(student_ids) and len(set(teacher_ids.tolist())) == len(teacher_ids)


def test_vocabulary_map_is_cached_per_tokenizer_pair(byte_level, sentencepiece, tiny_tokenizer_dir, tmp_path):
    from minillm.modeling import load_tokenizer

    path = tmp_path / "vocabulary_map.json"
    first = cached_vocabulary_map(byte_level, sentencepiece, path)
    written = path.read_text()
    assert all(np.array_equal(a, b) for a, b in zip(first, cached_vocabulary_map(byte_level, sentencepiece, path)))
    assert path.read_text() == written
    other = load_tokenizer(tiny_tokenizer_dir)
    rebuilt = cached_vocabulary_map(other, sentencepiece, path)  # another student: built again, not read
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt, vocabulary_map(other, sentencepiece)))


def test_a_word_of_one_token_against_three_pairs_at_its_first_byte(byte_level, sentencepiece):
    student, teacher = TextCodec(byte_level), TextCodec(sentencepiece)
    ids = byte_level("The dog ran happily home.")["input_ids"]
    assert byte_level.convert_ids_to_tokens(ids) == ["The", "Ġdog", "Ġran", "Ġhappily", "Ġhome", "."]
    prompt_text, response, student_tokens = student.split_text(ids[:2], ids[2:])
    assert (prompt_text, response) == ("The dog", b" ran happily home.")
    teacher_ids, teacher_tokens = teacher.encode_continuation(prompt_text, response)
    assert sentencepiece.convert_ids_to_tokens(teacher_ids) == ["<s>", "▁The", "▁dog", "▁ran", "▁hap", "pi", "ly",
                                                                 "▁home", "."]
    assert teacher_tokens.positions.tolist() == [3, 4, 5, 6, 7, 8]
    assert teacher_tokens.starts.tolist() == [0, 4, 8, 10, 12, 17]
    s, t = starts_pairs(student_tokens, teacher_tokens)
    # " ran", " happily" ↔ "▁hap" (pi, ly: no partner), " home", "."
    assert s.tolist() == [0, 1, 2, 3] and t.tolist() == [3, 4, 7, 8]
    s, t = positional_pairs(student_tokens, teacher_tokens)  # ULD: in order, up to the shorter
    assert s.tolist() == [0, 1, 2, 3] and t.tolist() == [3, 4, 5, 6]


def test_a_token_across_the_prompt_boundary_stays_in_the_prompt(byte_level, sentencepiece):
    teacher = TextCodec(sentencepiece)
    ids = sentencepiece("The dog ran happily")["input_ids"]  # <s> ▁The ▁dog ▁ran ▁hap pi ly
    prompt_text, response, _ = teacher.split_text(ids[:5], ids[5:])  # cut inside "happily"
    assert (prompt_text, response) == ("The dog ran hap", b"pily")
    student_ids, tokens = TextCodec(byte_level).encode_continuation(prompt_text, response)
    assert byte_level.convert_ids_to_tokens(student_ids)[-1] == "Ġhappily" and len(tokens.positions) == 0


def test_alignment_stops_at_bytes_that_are_not_utf8(byte_level, sentencepiece):
    student, teacher = TextCodec(byte_level), TextCodec(sentencepiece)
    dog, ran, home = (byte_level.convert_tokens_to_ids(t) for t in ("Ġdog", "Ġran", "Ġhome"))
    broken = byte_level.convert_tokens_to_ids("â")  # byte 0xE2 alone: an unfinished character
    prompt_text, response, student_tokens = student.split_text([byte_level.convert_tokens_to_ids("The")],
                                                               [dog, broken, ran, home])
    assert response == b" dog\xe2 ran home"
    _, teacher_tokens = teacher.encode_continuation(prompt_text, response)
    assert teacher_tokens.starts.max() < 4, "nothing from the invalid byte on is aligned"
    assert starts_pairs(student_tokens, teacher_tokens)[0].tolist() == [0]


def test_pair_batch_points_at_the_logits_that_predict_each_paired_token(byte_level, sentencepiece):
    student, teacher = TextCodec(byte_level), TextCodec(sentencepiece)
    texts = [("The dog", " ran happily home."), ("The", " dog ran.")]
    examples = []
    for prompt, response in texts:
        prompt_ids = byte_level(prompt)["input_ids"]
        examples.append(Example(np.array(prompt_ids + byte_level(response)["input_ids"] + [byte_level.eos_token_id]),
                                len(prompt_ids)))
    batch = collate_sft(examples, byte_level.pad_token_id)
    pairs = pair_batch(student, teacher, "aligned", batch["input_ids"], batch["labels"], batch["attention_mask"], 64)
    width_s, width_t = batch["input_ids"].shape[1], pairs.inputs["input_ids"].shape[1]
    assert pairs.inputs["input_ids"][:, 0].tolist() == [sentencepiece.bos_token_id] * 2
    student_tokens = batch["labels"].flatten()[pairs.student_rows]  # the token each student row predicts
    rows, columns = pairs.teacher_rows // width_t, pairs.teacher_rows % width_t + 1
    teacher_tokens = pairs.inputs["input_ids"][rows, columns]
    spelled = [(byte_level.convert_ids_to_tokens(int(s)), sentencepiece.convert_ids_to_tokens(int(t)))
               for s, t in zip(student_tokens, teacher_tokens)]
    assert spelled == [("Ġran", "▁ran"), ("Ġhappily", "▁hap"), ("Ġhome", "▁home"), (".", "."),
                       ("Ġdog", "▁dog"), ("Ġran", "▁ran"), (".", ".")], "EOS is never paired"
    assert torch.equal(pairs.student_rows // width_s, rows)
    assert pairs.per_sequence(2, width_s).tolist() == [4.0, 3.0]


def test_shared_spans_sum_the_teacher_over_spans_both_cut_alike():
    # student " ran" " happily" " home" "."; teacher "▁ran" "▁hap" "pi" "ly" "▁home" "."
    student = ResponseTokens(np.arange(4), np.array([0, 4, 12, 17]))
    teacher = ResponseTokens(np.arange(3, 9), np.array([0, 4, 8, 10, 12, 17]))
    values, covered = shared_spans(student, np.array([4, 8, 5, 1]), teacher, np.array([4, 4, 2, 2, 5, 1]),
                                   np.array([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]))
    assert values.tolist() == [-1.0, -9.0, -5.0, -6.0] and covered.all()
    # The teacher's first response token starts late (a token spanned the prompt boundary): " ran" has no span.
    late = ResponseTokens(np.arange(4, 9), np.array([4, 8, 10, 12, 17]))
    values, covered = shared_spans(student, np.array([4, 8, 5, 1]), late, np.array([4, 2, 2, 5, 1]),
                                   np.array([-2.0, -3.0, -4.0, -5.0, -6.0]))
    assert values.tolist() == [0.0, -9.0, -5.0, -6.0] and covered.tolist() == [False, True, True, True]


# -- the distances -------------------------------------------------------------------------------

def _sorted_l1(q: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The closed form, written independently: sort each row descending, pad with zeros, L1."""
    width = max(q.shape[1], p.shape[1])
    q = np.pad(-np.sort(-q, axis=1), ((0, 0), (0, width - q.shape[1])))
    p = np.pad(-np.sort(-p, axis=1), ((0, 0), (0, width - p.shape[1])))
    return np.abs(q - p).sum(1)


@pytest.mark.parametrize("student_vocab, teacher_vocab", [(7, 4), (4, 7), (5, 5)])
def test_uld_is_the_sorted_l1_closed_form(student_vocab, teacher_vocab):
    generator = torch.Generator().manual_seed(student_vocab * 10 + teacher_vocab)
    q = torch.randn(6, student_vocab, generator=generator, dtype=torch.float64).mul(2).log_softmax(-1)
    p = torch.randn(6, teacher_vocab, generator=generator, dtype=torch.float64).mul(2).log_softmax(-1)
    value = universal_logit_distance(q, p)
    assert value.dtype == torch.float64 and value.shape == (6,)
    np.testing.assert_allclose(value.numpy(), _sorted_l1(q.exp().numpy(), p.exp().numpy()), rtol=0, atol=1e-12)


def test_uld_is_the_l1_of_the_best_one_to_one_pairing():
    """Sorted pairing minimises Σ|q_i − p_π(i)| over permutations (the Wasserstein bound's closed form)."""
    generator = torch.Generator().manual_seed(3)
    q = torch.randn(4, 4, generator=generator, dtype=torch.float64).log_softmax(-1)
    p = torch.randn(4, 3, generator=generator, dtype=torch.float64).log_softmax(-1)
    padded = torch.nn.functional.pad(p.exp(), (0, 1))
    best = torch.stack([(q.exp() - padded[:, list(order)]).abs().sum(-1)
                        for order in itertools.permutations(range(4))]).min(0).values
    torch.testing.assert_close(universal_logit_distance(q, p), best, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", ["uniform student", "student equals teacher", "tied pairs"])
def test_uld_gradient_is_finite_where_probabilities_tie(case):
    teacher = torch.tensor([[0.5, 0.25, 0.25, 0.0]], dtype=torch.float64).log()
    logits = {"uniform student": torch.zeros(1, 5, dtype=torch.float64),
              "student equals teacher": teacher.clone().clamp(min=-1e4),
              "tied pairs": torch.tensor([[1.0, 1.0, 0.0, 0.0, -2.0]], dtype=torch.float64)}[case]
    logits.requires_grad_(True)
    universal_logit_distance(logits.log_softmax(-1), teacher).sum().backward()
    assert torch.isfinite(logits.grad).all()


def test_uld_gradient_matches_finite_differences():
    teacher = torch.tensor([[0.5, 0.25, 0.2, 0.05]], dtype=torch.float64).log().expand(2, 4)
    generic = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(6), requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: universal_logit_distance(x.log_softmax(-1), teacher), (generic,))


def test_aligned_distance_is_word_level_kd_when_every_entry_is_shared():
    generator = torch.Generator().manual_seed(1)
    q = torch.randn(5, 6, generator=generator, dtype=torch.float64).log_softmax(-1)
    p = torch.randn(5, 6, generator=generator, dtype=torch.float64).log_softmax(-1)
    order = torch.randperm(6, generator=generator)  # the same entries under other ids
    for name, params in [("forward_kl", {}), ("js_divergence", {"jsd_beta": 0.3})]:
        value = aligned_vocabulary_distance(q[:, order], p, torch.argsort(order), torch.arange(6), name, **params)
        torch.testing.assert_close(value, DIVERGENCES[name](p, q, **params))


def test_aligned_distance_is_uld_when_nothing_is_shared():
    generator = torch.Generator().manual_seed(2)
    q = torch.randn(5, 7, generator=generator, dtype=torch.float64).log_softmax(-1)
    p = torch.randn(5, 4, generator=generator, dtype=torch.float64).log_softmax(-1)
    none = torch.zeros(0, dtype=torch.long)
    torch.testing.assert_close(aligned_vocabulary_distance(q, p, none, none), universal_logit_distance(q, p))


def test_aligned_distance_with_a_partial_map_is_bucketed_kl_plus_sorted_rest():
    generator = torch.Generator().manual_seed(4)
    q = torch.randn(3, 6, generator=generator, dtype=torch.float64).log_softmax(-1)
    p = torch.randn(3, 5, generator=generator, dtype=torch.float64).log_softmax(-1)
    student_ids, teacher_ids = torch.tensor([4, 0]), torch.tensor([1, 3])
    qe, pe = q.exp().numpy(), p.exp().numpy()
    q_rest, p_rest = np.delete(qe, [4, 0], axis=1), np.delete(pe, [1, 3], axis=1)
    q_hat = np.concatenate([qe[:, [4, 0]], q_rest.sum(1, keepdims=True)], 1)
    p_hat = np.concatenate([pe[:, [1, 3]], p_rest.sum(1, keepdims=True)], 1)
    expected = (p_hat * np.log(p_hat / q_hat)).sum(1) + _sorted_l1(q_rest, p_rest)
    np.testing.assert_allclose(aligned_vocabulary_distance(q, p, student_ids, teacher_ids).numpy(), expected,
                               rtol=1e-12)


def _direct(distance, student_logits, teacher_logits, pairs, vocabulary_map, temperature):
    """Per sequence, Σ over pairs of the per-token distance, by plain autograd."""
    totals = torch.zeros(student_logits.shape[0], dtype=torch.float64)
    for b, s, t in pairs:
        q = (student_logits[b, s] / temperature).log_softmax(-1)[None]
        p = (teacher_logits[b, t] / temperature).log_softmax(-1)[None]
        value = (universal_logit_distance(q, p) if distance == "uld"
                 else aligned_vocabulary_distance(q, p, *vocabulary_map))
        totals = totals + torch.nn.functional.one_hot(torch.tensor(b), len(totals)) * value
    return totals


@pytest.mark.parametrize("distance", ["uld", "aligned"])
def test_chunked_cross_tokenizer_divergence_matches_the_direct_sum(distance):
    generator = torch.Generator().manual_seed(5)
    student = torch.randn(2, 5, 9, generator=generator, dtype=torch.float64)  # V_s = 8 + a padding column
    teacher = torch.randn(2, 6, 6, generator=generator, dtype=torch.float64)
    pairs = [(0, 1, 0), (0, 2, 3), (0, 4, 4), (1, 0, 1), (1, 3, 5)]
    vocabulary = (torch.tensor([0, 5, 7]), torch.tensor([2, 1, 4]))
    student_rows = torch.tensor([b * 5 + s for b, s, _ in pairs])
    teacher_rows = torch.tensor([b * 6 + t for b, _, t in pairs])
    settings = {"vocabulary_map": vocabulary} if distance == "aligned" else {}
    leaf = student.clone().requires_grad_(True)
    value = cross_tokenizer_divergence(distance, leaf, teacher, student_rows, teacher_rows, student_vocab_size=8,
                                       teacher_vocab_size=6, temperature=1.5, chunk_size=2, **settings)
    value.sum().backward()
    direct_leaf = student.clone().requires_grad_(True)
    expected = _direct(distance, direct_leaf[..., :8], teacher, pairs, vocabulary, 1.5)
    expected.sum().backward()
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(leaf.grad, direct_leaf.grad)
    assert not leaf.grad[..., 8].any() and not leaf.grad[0, 0].any()  # padding column, unpaired row


def test_cross_tokenizer_divergence_refuses_pairs_across_sequences_and_repeats():
    student, teacher = torch.zeros(2, 3, 4), torch.zeros(2, 3, 5)
    kwargs = dict(student_vocab_size=4, teacher_vocab_size=5)
    with pytest.raises(ValueError, match="same sequence"):
        cross_tokenizer_divergence("uld", student, teacher, torch.tensor([0]), torch.tensor([4]), **kwargs)
    with pytest.raises(ValueError, match="at most once"):
        cross_tokenizer_divergence("uld", student, teacher, torch.tensor([1, 1]), torch.tensor([1, 2]), **kwargs)
    with pytest.raises(ValueError, match="no divergence"):
        cross_tokenizer_divergence("uld", student, teacher, torch.tensor([1]), torch.tensor([1]), kd_loss="reverse_kl",
                                   **kwargs)


def test_bits_per_character_pools_rows():
    assert bits_per_character([math.log(2) * 3, math.log(2) * 5], [2, 6]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        bits_per_character([1.0], [0])
