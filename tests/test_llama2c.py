"""tools/convert_llama2c.py: llama2.c checkpoints and tokenizers as Hugging Face folders.

The references here are written from llama2.c's run.c, independently of the converter: a reader
of the raw `.bin`, the forward pass (RMSNorm eps 1e-5, rotary on interleaved pairs, grouped-query
attention, SwiGLU) and the greedy score-merge encoder. A synthetic checkpoint exercises the
format without ../shared/data; the real stories260K tests skip when it is absent.
"""
from __future__ import annotations

import random
import struct

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from world import SHARED_DATA, load_tool

convert_llama2c = load_tool("convert_llama2c")

STORIES = SHARED_DATA / "models" / "stories260K"
needs_stories = pytest.mark.skipif(not (STORIES / "stories260K.bin").is_file(),
                                   reason="../shared/data/models/stories260K absent: no real llama2.c checkpoint")
GREEDY_STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."


# -- llama2.c, written from run.c ---------------------------------------------------------------

def read_llama2c(path):
    """Header values and the tensors of a legacy checkpoint, straight from the bytes."""
    dim, hidden, layers, heads, kv_heads, vocab, seq_len = (int(v) for v in np.fromfile(path, "<i4", count=7))
    floats = np.fromfile(path, "<f4", offset=28).astype(np.float64)
    head_size = dim // heads
    kv_dim = kv_heads * head_size
    shapes = [("emb", (abs(vocab), dim)), ("rms_att", (layers, dim)), ("wq", (layers, dim, dim)),
              ("wk", (layers, kv_dim, dim)), ("wv", (layers, kv_dim, dim)), ("wo", (layers, dim, dim)),
              ("rms_ffn", (layers, dim)), ("w1", (layers, hidden, dim)), ("w2", (layers, dim, hidden)),
              ("w3", (layers, hidden, dim)), ("rms_final", (dim,)),
              ("freq_real", (seq_len, head_size // 2)), ("freq_imag", (seq_len, head_size // 2))]
    if vocab < 0:
        shapes.append(("wcls", (-vocab, dim)))
    weights, offset = {}, 0
    for name, shape in shapes:
        size = int(np.prod(shape))
        weights[name] = floats[offset:offset + size].reshape(shape)
        offset += size
    assert offset == len(floats)
    weights.setdefault("wcls", weights["emb"])
    return dict(heads=heads, kv_heads=kv_heads, head_size=head_size), weights


def rmsnorm(x, weight):
    return weight * x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5)


def rotate_interleaved(vectors, head_size):
    """run.c's RoPE: pairs (i, i+1) of the whole vector, frequency from i % head_size."""
    positions = np.arange(vectors.shape[0])[:, None]
    index = np.arange(0, vectors.shape[1], 2)
    angle = positions * (1.0 / 10000.0 ** ((index % head_size) / head_size))[None, :]
    even, odd = vectors[:, 0::2], vectors[:, 1::2]
    out = np.empty_like(vectors)
    out[:, 0::2] = even * np.cos(angle) - odd * np.sin(angle)
    out[:, 1::2] = even * np.sin(angle) + odd * np.cos(angle)
    return out


def reference_logits(path, tokens):
    """run.c's forward pass over `tokens` (float64), logits at every position: [T, vocab]."""
    shape, w = read_llama2c(path)
    heads, head_size, group = shape["heads"], shape["head_size"], shape["heads"] // shape["kv_heads"]
    length = len(tokens)
    causal = np.triu(np.full((length, length), -np.inf), 1)
    x = w["emb"][tokens]
    for layer in range(w["wq"].shape[0]):
        xb = rmsnorm(x, w["rms_att"][layer])
        q = rotate_interleaved(xb @ w["wq"][layer].T, head_size)
        k = rotate_interleaved(xb @ w["wk"][layer].T, head_size)
        v = xb @ w["wv"][layer].T
        attended = np.empty_like(q)
        for head in range(heads):
            query = q[:, head * head_size:(head + 1) * head_size]
            kv = slice((head // group) * head_size, (head // group + 1) * head_size)
            scores = query @ k[:, kv].T / np.sqrt(head_size) + causal
            weights = np.exp(scores - scores.max(-1, keepdims=True))
            attended[:, head * head_size:(head + 1) * head_size] = (weights / weights.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + attended @ w["wo"][layer].T
        xb = rmsnorm(x, w["rms_ffn"][layer])
        gate, up = xb @ w["w1"][layer].T, xb @ w["w3"][layer].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w["w2"][layer].T
    return rmsnorm(x, w["rms_final"]) @ w["wcls"].T


def read_llama2c_tokenizer(path, vocab_size):
    data = path.read_bytes()
    offset, pieces, scores = 4, [], []
    for _ in range(vocab_size):
        score, length = struct.unpack_from("<fi", data, offset)
        pieces.append(data[offset + 8:offset + 8 + length])
        scores.append(score)
        offset += 8 + length
    return pieces, scores


def llama2c_encode(text, pieces, scores):
    """run.c's encode() without BOS/EOS: dummy-prefix space, one token per UTF-8 character (byte
    fallback: byte + 3), then repeatedly merge the adjacent pair whose concatenation is the
    highest-scoring token (the leftmost on ties)."""
    lookup = {piece: index for index, piece in enumerate(pieces)}
    tokens = [lookup[b" "]] if text else []
    for character in text:
        encoded = character.encode("utf-8")
        tokens += [lookup[encoded]] if encoded in lookup else [byte + 3 for byte in encoded]
    while True:
        best = None
        for i in range(len(tokens) - 1):
            merged = lookup.get(pieces[tokens[i]] + pieces[tokens[i + 1]])
            if merged is not None and (best is None or scores[merged] > scores[best[1]]):
                best = (i, merged)
        if best is None:
            return tokens
        tokens[best[0]:best[0] + 2] = [best[1]]


# -- a synthetic checkpoint (no shared data needed) ---------------------------------------------

SYNTHETIC_CHARS = [" ", "a", "b", "c", "d", "e", "é"]
# Merged tokens, best first; " ab" can be reached from (" a", "b") or (" ", "ab").
SYNTHETIC_MERGES = ["ab", " a", "cd", "abcd", " ab", "e ", "ee", " é"]


def synthetic_tokenizer_pieces():
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [f"<0x{byte:02X}>".encode() for byte in range(256)]
    scores = [0.0] * len(pieces)
    for rank, merged in enumerate(SYNTHETIC_MERGES):
        pieces.append(merged.encode())
        scores.append(-float(rank))
    for rank, character in enumerate(SYNTHETIC_CHARS):
        pieces.append(character.encode())
        scores.append(-100.0 - rank)
    return pieces, scores


def write_tokenizer(path, pieces, scores):
    body = b"".join(struct.pack("<fi", score, len(piece)) + piece for piece, score in zip(pieces, scores))
    path.write_bytes(struct.pack("<i", max(map(len, pieces))) + body)


def write_synthetic(directory, shared_classifier=True, seed=0):
    """A random llama2.c checkpoint (2 layers, dim 16, 4 heads, 2 KV heads) + its tokenizer."""
    pieces, scores = synthetic_tokenizer_pieces()
    dim, hidden, layers, heads, kv_heads, seq_len = 16, 24, 2, 4, 2, 32
    vocab = len(pieces)
    kv_dim = kv_heads * dim // heads
    rng = np.random.default_rng(seed)
    sizes = [vocab * dim, layers * dim, layers * dim * dim, 2 * layers * kv_dim * dim, layers * dim * dim,
             layers * dim, 3 * layers * hidden * dim, dim, seq_len * dim // heads]
    if not shared_classifier:
        sizes.append(vocab * dim)
    floats = rng.normal(0, 0.5, sum(sizes)).astype("<f4")
    checkpoint, tokenizer = directory / "model.bin", directory / "tok.bin"
    header = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if shared_classifier else -vocab, seq_len)
    checkpoint.write_bytes(header + floats.tobytes())
    write_tokenizer(tokenizer, pieces, scores)
    return checkpoint, tokenizer


@pytest.mark.parametrize("shared_classifier", [True, False])
def test_synthetic_logits_match_run_c(tmp_path, shared_classifier):
    checkpoint, tokenizer = write_synthetic(tmp_path, shared_classifier)
    assert convert_llama2c.main(["--checkpoint", str(checkpoint), "--tokenizer", str(tokenizer),
                                 "--out", str(tmp_path / "hf")]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf", local_files_only=True)
    assert model.config.tie_word_embeddings is shared_classifier
    tokens = [1, 259, 270, 262, 263, 268, 272, 5]
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].double().numpy()
    np.testing.assert_allclose(logits, reference_logits(checkpoint, tokens), atol=2e-4, rtol=0)


def test_synthetic_tokenizer_agrees_with_run_c_on_random_text(tmp_path):
    checkpoint, tokenizer_file = write_synthetic(tmp_path)
    convert_llama2c.convert(checkpoint, tokenizer_file, tmp_path / "hf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf", local_files_only=True)
    pieces, scores = synthetic_tokenizer_pieces()
    generator = random.Random(0)
    for _ in range(300):  # "x" and "\n" are not in the vocabulary: byte fallback
        text = "".join(generator.choice("abcdeé x\n") for _ in range(generator.randint(0, 14)))
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert ids == llama2c_encode(text, pieces, scores), text
        assert tokenizer.decode(ids) == text


def _error_of(capsys, checkpoint, tokenizer, out):
    assert convert_llama2c.main(["--checkpoint", str(checkpoint), "--tokenizer", str(tokenizer),
                                 "--out", str(out)]) == 1
    assert not out.exists(), "a failed conversion must leave no output"
    return capsys.readouterr().err


def test_truncated_or_malformed_files_are_named_and_leave_nothing(tmp_path, capsys):
    checkpoint, tokenizer = write_synthetic(tmp_path)
    out = tmp_path / "hf"
    data, tokens = checkpoint.read_bytes(), tokenizer.read_bytes()

    bad = tmp_path / "truncated.bin"
    bad.write_bytes(data[:-10])
    error = _error_of(capsys, bad, tokenizer, out)
    assert str(bad) in error and "truncated" in error and "dim=16" in error

    bad.write_bytes(data + b"\0" * 8)
    assert "trailing data" in _error_of(capsys, bad, tokenizer, out)

    bad.write_bytes(data[:20])
    assert "too short for the 28-byte header" in _error_of(capsys, bad, tokenizer, out)

    bad.write_bytes(struct.pack("<7i", 16, 24, 2, 3, 1, 10, 32) + data[28:])
    assert "bad header" in _error_of(capsys, bad, tokenizer, out)

    bad.write_bytes(struct.pack("<i", 0x616B3432) + data[4:])
    assert "versioned llama2.c export" in _error_of(capsys, bad, tokenizer, out)

    bad_tokens = tmp_path / "tok_truncated.bin"
    bad_tokens.write_bytes(tokens[:-3])
    error = _error_of(capsys, checkpoint, bad_tokens, out)
    assert str(bad_tokens) in error and "truncated" in error

    bad_tokens.write_bytes(tokens + struct.pack("<fi", 0.0, 1) + b"z")
    assert "bytes left after" in _error_of(capsys, checkpoint, bad_tokens, out)

    missing = tmp_path / "missing.bin"
    assert str(missing) in _error_of(capsys, missing, tokenizer, out)


# -- the real stories260K ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def stories(tmp_path_factory):
    out = tmp_path_factory.mktemp("stories260K") / "hf"
    convert_llama2c.convert(STORIES / "stories260K.bin", STORIES / "tok512.bin", out)
    return out


@needs_stories
def test_greedy_decoding_from_bos_tells_the_documented_story(stories):
    from minillm.modeling import load_model, load_tokenizer

    tokenizer, model = load_tokenizer(stories), load_model(stories).eval()
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (1, 2, 2)
    with torch.no_grad():
        out = model.generate(torch.tensor([[tokenizer.bos_token_id]]), max_new_tokens=40, do_sample=False)
    assert tokenizer.decode(out[0], skip_special_tokens=True).startswith(GREEDY_STORY)


@needs_stories
def test_stories_logits_match_run_c(stories):
    model = AutoModelForCausalLM.from_pretrained(stories, local_files_only=True)
    tokens = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315]  # "Once upon a time, there was a little girl"
    with torch.no_grad():
        logits = model(torch.tensor([tokens])).logits[0].double().numpy()
    np.testing.assert_allclose(logits, reference_logits(STORIES / "stories260K.bin", tokens), atol=1e-4, rtol=0)


@needs_stories
def test_stories_tokenizer_round_trips_and_agrees_with_run_c(stories):
    tokenizer = AutoTokenizer.from_pretrained(stories, local_files_only=True)
    pieces, scores = read_llama2c_tokenizer(STORIES / "tok512.bin", 512)
    assert tokenizer.convert_ids_to_tokens(tokenizer.encode("Once upon a time", add_special_tokens=False)) == \
        ["▁Once", "▁upon", "▁a", "▁time"]
    texts = ["Once upon a time", GREEDY_STORY, "Tom and Sue's big red ball!", "Hello\n\nworld",
             "naïve café — 3 €", "  two  spaces ", "x", ""]
    generator = random.Random(0)
    texts += ["".join(generator.choice("abcdefghijklmnopqrstuvwxyz   ,.'!") for _ in range(40)) for _ in range(50)]
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert ids == llama2c_encode(text, pieces, scores), text
        assert tokenizer.decode(ids) == text
    assert tokenizer.encode("Once")[0] == tokenizer.bos_token_id  # special tokens: BOS first, as Llama's
