"""Convert a llama2.c checkpoint (legacy `.bin`) and its tokenizer (`tok*.bin`) into a Hugging Face folder.

  python tools/convert_llama2c.py --checkpoint ../shared/data/models/stories260K/stories260K.bin \
      --tokenizer ../shared/data/models/stories260K/tok512.bin --out checkpoints/stories260K

The folder holds a `LlamaForCausalLM` (config.json + model.safetensors, fp32) and a fast
tokenizer that `AutoTokenizer.from_pretrained(folder)` loads offline. Offline and deterministic;
the folder appears atomically, and a truncated or malformed input stops the run with a message
naming the file and what is wrong.

Formats (karpathy/llama2.c, `export.py --version 0` and `tokenizer.py`):
- checkpoint: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
  negative vocab_size means a separate output classifier follows), then fp32 tensors: token
  embedding, attention RMSNorm, wq, wk, wv, wo, FFN RMSNorm, w1, w2, w3, final RMSNorm, the
  rotary tables (recomputed by HF, skipped here) and, only when unshared, the classifier.
- tokenizer: int32 max token length, then per token: float32 score, int32 byte length, bytes
  (spaces as ' ', BOS/EOS written as '\\n<s>\\n' / '\\n</s>\\n', byte fallback as '<0xXX>').
"""
from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, processors  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from minillm.fileio import atomic_directory  # noqa: E402

HEADER = struct.Struct("<7i")
# llama2.c's versioned exports (export.py --version 1/2) start with this magic ("ak42").
VERSIONED_EXPORT_MAGIC = 0x616B3432
FLOAT_BYTES = 4
ROPE_THETA = 10000.0  # fixed in llama2.c's run.c
RMS_NORM_EPS = 1e-5  # fixed in llama2.c's run.c
SPACE_MARKER = "\u2581"  # sentencepiece's '▁', which llama2.c's export turns into ' '
# llama2.c's export writes sentencepiece's special pieces in these forms, at Llama's ids.
SPECIAL_PIECES = {0: (b"<unk>", "<unk>"), 1: (b"\n<s>\n", "<s>"), 2: (b"\n</s>\n", "</s>")}
UNK, BOS, EOS = (SPECIAL_PIECES[i][1] for i in range(3))
BYTE_TOKEN_COUNT = 256  # <0x00>..<0xFF> follow the special pieces


class Llama2cFormatError(ValueError):
    """An input file that is not what llama2.c writes; the message names the file."""

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Llama2cConfig:
    """The checkpoint header."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size

    def tensor_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """Every tensor of the file, in file order (names are llama2.c's)."""
        layers, dim, hidden, kv_dim = self.n_layers, self.dim, self.hidden_dim, self.kv_dim
        shapes = [
            ("token_embedding", (self.vocab_size, dim)),
            ("rms_att", (layers, dim)),
            ("wq", (layers, dim, dim)),
            ("wk", (layers, kv_dim, dim)),
            ("wv", (layers, kv_dim, dim)),
            ("wo", (layers, dim, dim)),
            ("rms_ffn", (layers, dim)),
            ("w1", (layers, hidden, dim)),
            ("w2", (layers, dim, hidden)),
            ("w3", (layers, hidden, dim)),
            ("rms_final", (dim,)),
            ("freq_cis_real", (self.seq_len, self.head_size // 2)),
            ("freq_cis_imag", (self.seq_len, self.head_size // 2)),
        ]
        if not self.shared_classifier:
            shapes.append(("classifier", (self.vocab_size, dim)))
        return shapes

    def file_size(self) -> int:
        floats = sum(int(np.prod(shape)) for _, shape in self.tensor_shapes())
        return HEADER.size + FLOAT_BYTES * floats

    def describe(self) -> str:
        return (f"dim={self.dim}, hidden_dim={self.hidden_dim}, n_layers={self.n_layers}, "
                f"n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, vocab_size={self.vocab_size}, "
                f"seq_len={self.seq_len}, {'shared' if self.shared_classifier else 'separate'} classifier")


def read_header(path: Path, data: bytes) -> Llama2cConfig:
    if len(data) < HEADER.size:
        raise Llama2cFormatError(path, f"{len(data)} bytes, too short for the {HEADER.size}-byte header "
                                       "of a llama2.c checkpoint")
    values = HEADER.unpack_from(data)
    if values[0] == VERSIONED_EXPORT_MAGIC:
        raise Llama2cFormatError(path, "a versioned llama2.c export (magic 'ak42'); only the legacy format "
                                       "(export.py --version 0) is supported")
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len = values
    config = Llama2cConfig(dim, hidden_dim, n_layers, n_heads, n_kv_heads, abs(vocab_size), seq_len,
                           shared_classifier=vocab_size > 0)
    # vocab_size's sign only says whether the classifier is shared.
    problems = [f"{name}={value} must be positive" for name, value in
                zip(("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "|vocab_size|", "seq_len"),
                    (dim, hidden_dim, n_layers, n_heads, n_kv_heads, abs(vocab_size), seq_len)) if value <= 0]
    if not problems:
        if dim % n_heads or (dim // n_heads) % 2:
            problems.append(f"dim={dim} must split into n_heads={n_heads} heads of even size (rotary pairs)")
        if n_heads % n_kv_heads:
            problems.append(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}")
    if problems:
        raise Llama2cFormatError(path, "bad header: " + "; ".join(problems))
    return config


def read_checkpoint(path: str | Path) -> tuple[Llama2cConfig, dict[str, np.ndarray]]:
    """The header and every tensor (float32 arrays named as in `Llama2cConfig.tensor_shapes`)."""
    path = Path(path)
    data = path.read_bytes()
    config = read_header(path, data)
    expected = config.file_size()
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than expected (trailing data)"
        raise Llama2cFormatError(path, f"{len(data)} bytes, but a legacy llama2.c checkpoint with this header "
                                       f"({config.describe()}) has {expected} bytes: {state}")
    weights, offset = {}, HEADER.size
    for name, shape in config.tensor_shapes():
        count = int(np.prod(shape))
        weights[name] = np.frombuffer(data, dtype="<f4", count=count, offset=offset).reshape(shape)
        offset += FLOAT_BYTES * count
        if not np.isfinite(weights[name]).all():
            raise Llama2cFormatError(path, f"tensor {name} holds non-finite values")
    return config, weights


def read_tokenizer(path: str | Path, vocab_size: int) -> list[tuple[bytes, float]]:
    """(token bytes, score) for each of the `vocab_size` tokens (the file does not store the count)."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 4:
        raise Llama2cFormatError(path, f"{len(data)} bytes, too short for the max-token-length field")
    (max_token_length,) = struct.unpack_from("<i", data)
    if max_token_length <= 0:
        raise Llama2cFormatError(path, f"bad max token length {max_token_length}")
    offset, tokens = 4, []
    for index in range(vocab_size):
        if offset + 8 > len(data):
            raise Llama2cFormatError(path, f"truncated at token {index} of {vocab_size} (offset {offset})")
        score, length = struct.unpack_from("<fi", data, offset)
        offset += 8
        if not 0 < length <= max_token_length or offset + length > len(data):
            problem = ("truncated" if offset + length > len(data) and 0 < length <= max_token_length
                       else f"byte length {length} outside 1..{max_token_length}")
            raise Llama2cFormatError(path, f"token {index}: {problem} (offset {offset - 4})")
        tokens.append((data[offset:offset + length], score))
        offset += length
    if offset != len(data):
        raise Llama2cFormatError(path, f"{len(data) - offset} bytes left after {vocab_size} tokens: the file "
                                       "does not belong to a checkpoint with this vocabulary size")
    return tokens


def vocabulary_pieces(path: str | Path, tokens: list[tuple[bytes, float]]) -> list[str]:
    """Token strings in sentencepiece's spelling ('▁' for spaces, plain `<s>`/`</s>`)."""
    pieces = []
    for index, (raw, _) in enumerate(tokens):
        if index in SPECIAL_PIECES:
            expected, piece = SPECIAL_PIECES[index]
            if raw != expected:
                raise Llama2cFormatError(path, f"token {index} is {raw!r}, expected {expected!r} "
                                               "(llama2.c's sentencepiece export)")
        else:
            try:
                piece = raw.decode("utf-8").replace(" ", SPACE_MARKER)
            except UnicodeDecodeError:
                raise Llama2cFormatError(path, f"token {index} ({raw!r}) is not valid UTF-8") from None
        pieces.append(piece)
    for byte in range(BYTE_TOKEN_COUNT):
        index = len(SPECIAL_PIECES) + byte
        if index >= len(pieces) or pieces[index] != f"<0x{byte:02X}>":
            raise Llama2cFormatError(path, f"token {index} should be the byte-fallback token <0x{byte:02X}>")
    if len(set(pieces)) != len(pieces):
        raise Llama2cFormatError(path, "duplicate tokens")
    return pieces


def build_tokenizer(pieces: list[str], scores: list[float], model_max_length: int) -> PreTrainedTokenizerFast:
    """Llama's sentencepiece BPE as a `tokenizers` BPE: the merges are every pair of tokens whose
    concatenation is a token, ranked by that token's score (highest first), which is the order in
    which sentencepiece and llama2.c's greedy encoder apply them; byte fallback for unknown
    characters; a '▁' prefix as sentencepiece's dummy prefix."""
    vocab = {piece: index for index, piece in enumerate(pieces)}
    mergeable = range(len(SPECIAL_PIECES) + BYTE_TOKEN_COUNT, len(pieces))
    ranked = []
    for index in mergeable:
        piece = pieces[index]
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocab and right in vocab:
                ranked.append((-scores[index], index, vocab[left], left, right))
    merges = [(left, right) for *_, left, right in sorted(ranked)]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE_MARKER),
                                                 normalizers.Replace(" ", SPACE_MARKER)])
    tokenizer.decoder = decoders.Sequence([decoders.Replace(SPACE_MARKER, " "), decoders.ByteFallback(),
                                           decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    # Like Llama's tokenizers: BOS first when special tokens are requested.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])])
    # pad = EOS is the project's convention (minillm.modeling.load_tokenizer).
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=EOS, model_max_length=model_max_length)


def permute_for_rotate_half(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder each head's output rows from llama2.c's interleaved rotary pairs (2i, 2i+1) to HF's
    rotate_half pairs (i, i + head_size/2), as Meta's Llama → HF conversion does."""
    rows, columns = weight.shape
    return weight.reshape(n_heads, rows // n_heads // 2, 2, columns).transpose(0, 2, 1, 3).reshape(rows, columns)


def hf_config(config: Llama2cConfig) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.dim, intermediate_size=config.hidden_dim,
        num_hidden_layers=config.n_layers, num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_kv_heads, max_position_embeddings=config.seq_len,
        rms_norm_eps=RMS_NORM_EPS, rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        tie_word_embeddings=config.shared_classifier, hidden_act="silu",
        bos_token_id=1, eos_token_id=2, pad_token_id=2)


def hf_state_dict(config: Llama2cConfig, weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    state = {"model.embed_tokens.weight": weights["token_embedding"], "model.norm.weight": weights["rms_final"],
             "lm_head.weight": weights["token_embedding" if config.shared_classifier else "classifier"]}
    for layer in range(config.n_layers):
        prefix = f"model.layers.{layer}."
        state.update({
            prefix + "input_layernorm.weight": weights["rms_att"][layer],
            prefix + "self_attn.q_proj.weight": permute_for_rotate_half(weights["wq"][layer], config.n_heads),
            prefix + "self_attn.k_proj.weight": permute_for_rotate_half(weights["wk"][layer], config.n_kv_heads),
            prefix + "self_attn.v_proj.weight": weights["wv"][layer],
            prefix + "self_attn.o_proj.weight": weights["wo"][layer],
            prefix + "post_attention_layernorm.weight": weights["rms_ffn"][layer],
            prefix + "mlp.gate_proj.weight": weights["w1"][layer],
            prefix + "mlp.down_proj.weight": weights["w2"][layer],
            prefix + "mlp.up_proj.weight": weights["w3"][layer],
        })
    # np.array copies: the arrays are read-only views of the file's bytes.
    return {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}


def convert(checkpoint: str | Path, tokenizer_path: str | Path, out: str | Path) -> Llama2cConfig:
    """Write the HF folder `out` (replacing it atomically); return the checkpoint's header."""
    config, weights = read_checkpoint(checkpoint)
    tokens = read_tokenizer(tokenizer_path, config.vocab_size)
    pieces = vocabulary_pieces(tokenizer_path, tokens)
    tokenizer = build_tokenizer(pieces, [score for _, score in tokens], config.seq_len)
    model = LlamaForCausalLM(hf_config(config))
    model.load_state_dict(hf_state_dict(config, weights), strict=True)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="llama2.c legacy checkpoint (.bin)")
    parser.add_argument("--tokenizer", required=True, help="llama2.c tokenizer (tok*.bin)")
    parser.add_argument("--out", required=True, help="Hugging Face folder to write")
    args = parser.parse_args(argv)
    try:
        config = convert(args.checkpoint, args.tokenizer, args.out)
    except (Llama2cFormatError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"converted {args.checkpoint} ({config.describe()}) + {args.tokenizer} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
