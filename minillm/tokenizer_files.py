"""One fast tokenizer from whichever files a model family releases.

A tokenizer folder holds one of (looked for in this order):

  tokenizer.json          the `tokenizers` serialization any family may ship: loaded with the
                          class tokenizer_config.json declares (its special tokens too); a
                          folder that declares none is read by AutoTokenizer, and a
                          tokenizer.model beside it names BOS / EOS / UNK (Mistral's folders)
  vocab.json, merges.txt  byte-level BPE. GPT-2 style when the vocabulary holds <|endoftext|>
                          (GPT-2's pre-tokenizer; BOS = EOS = <|endoftext|>); otherwise Qwen2
                          style (Qwen2's pre-tokenizer: NFC, single digits; its three special
                          tokens <|endoftext|>, <|im_start|>, <|im_end|> appended after the
                          vocabulary, at Qwen2's own ids; EOS <|endoftext|>, no BOS)
  tokenizer.model         a SentencePiece BPE model (Llama / Mistral style), converted so that
                          it encodes exactly as SentencePiece does (the dummy-prefix space,
                          byte fallback); BOS / EOS / UNK / pad from the model's own spec, BOS
                          put in front of `encode(..., add_special_tokens=True)` as Llama's

A tokenizer built from vocab.json + merges.txt or tokenizer.model is checked before it is
returned: at least as many tokens as the source vocabulary, and a known text that decodes back
to itself in fewer tokens than bytes (a transformers-4-style constructor call gives a 3-token
tokenizer under transformers 5 without any error). `tools/make_random_model.py` saves a built
tokenizer (or one whose folder declares no class) beside the model: tokenizer.json +
tokenizer_config.json, which declares its class, so it is built once and read the same in a
model folder of any family.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

TOKENIZER_JSON, TOKENIZER_CONFIG = "tokenizer.json", "tokenizer_config.json"
BPE_FILES = ("vocab.json", "merges.txt")
SENTENCEPIECE_MODEL = "tokenizer.model"
# The files a tokenizer may consist of (a model folder holds them beside its weights).
TOKENIZER_FILES = (TOKENIZER_JSON, TOKENIZER_CONFIG, "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", *BPE_FILES, SENTENCEPIECE_MODEL)
GPT2_EOS = "<|endoftext|>"
QWEN2_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 151643-151645 in Qwen2's vocabulary
# What prompts and answers hold: digits, punctuation, a newline, non-ASCII, the answer markers.
CHECK_TEXT = "Q: 12 apples, 3 eaten?\nSo the answer is 9. The answer is 9 (café)."

# SentencePiece's ModelProto enums (sentencepiece_model.proto).
_SP_BPE = 2
_SP_MODEL_TYPES = {1: "Unigram", 2: "BPE", 3: "word", 4: "char"}
_SP_NORMAL, _SP_UNKNOWN, _SP_CONTROL, _SP_USER_DEFINED = 1, 2, 3, 4


@dataclass(frozen=True)
class LoadedTokenizer:
    tokenizer: PreTrainedTokenizerBase
    built_from: str  # what the folder held and how it was read, for the log
    built: bool  # True: made or completed here (save it beside a model; its files would not say what it is)


def describe_special_tokens(tokenizer: PreTrainedTokenizerBase) -> str:
    """'BOS <s> (1), EOS </s> (2), pad </s> (2)': the roles the project relies on."""
    def role(name: str) -> str:
        token = getattr(tokenizer, f"{name}_token")
        return "none" if token is None else f"{token} ({getattr(tokenizer, f'{name}_token_id')})"
    return f"BOS {role('bos')}, EOS {role('eos')}, pad {role('pad')}"


def read_tokenizer(folder: str | Path) -> LoadedTokenizer:
    """The folder's tokenizer, whichever of the files above it holds; FileNotFoundError naming
    what it does hold when none, ValueError when the files cannot make a working tokenizer."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"tokenizer folder {folder} does not exist (this project never downloads from "
                                "the hub: point to a folder on disk)")
    if (folder / TOKENIZER_JSON).is_file():
        return _from_tokenizer_json(folder)
    if all((folder / name).is_file() for name in BPE_FILES):
        return _checked(*_byte_level_bpe(folder), folder)
    if (folder / SENTENCEPIECE_MODEL).is_file():
        return _checked(*_sentencepiece(folder / SENTENCEPIECE_MODEL), folder)
    held = ", ".join(sorted(path.name for path in folder.iterdir())) or "nothing"
    raise FileNotFoundError(f"{folder} holds no tokenizer: expected {TOKENIZER_JSON}, or {' + '.join(BPE_FILES)} "
                            f"(byte-level BPE, GPT-2 / Qwen style), or {SENTENCEPIECE_MODEL} (SentencePiece, "
                            f"Llama / Mistral style); it holds: {held}")


def _declared_class(folder: Path) -> str | None:
    path = folder / TOKENIZER_CONFIG
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("tokenizer_class")
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from None


def _from_tokenizer_json(folder: Path) -> LoadedTokenizer:
    """The class tokenizer_config.json declares, never one chosen by config.json's model_type:
    transformers 5's AutoTokenizer rebuilds the tokenizer of some model types (Qwen2, Phi-3,
    ...) with their own class whatever the folder declares, so a GPT-2 or SentencePiece
    tokenizer inside such a model folder would silently tokenize differently. Only a folder that
    declares no class is left to AutoTokenizer (the official GPT-2 files: its config.json says
    what the tokenizer is)."""
    declared = _declared_class(folder)
    if declared is None:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    else:
        from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
        tokenizer_class = tokenizer_class_from_name(declared)
        if tokenizer_class is None:
            raise ValueError(f"{folder / TOKENIZER_CONFIG}: tokenizer_class {declared!r} is not a tokenizer class of "
                             "this transformers version")
        tokenizer = tokenizer_class.from_pretrained(folder, local_files_only=True)
    built_from = TOKENIZER_JSON
    if declared is None and (folder / SENTENCEPIECE_MODEL).is_file():
        # tokenizer.json alone does not say which token is which; the SentencePiece model does.
        roles = _sentencepiece_roles(_read_sentencepiece_proto(folder / SENTENCEPIECE_MODEL))
        tokenizer.add_special_tokens({f"{name}_token": token for name, token in roles.items()})
        built_from += f" (special tokens from {SENTENCEPIECE_MODEL})"
    # Copied as they are only when they declare their class (a model folder of another family
    # then still reads them right); otherwise saved, which declares it.
    return LoadedTokenizer(tokenizer, built_from, built=declared is None)


def _checked(tokenizer: PreTrainedTokenizerBase, built_from: str, source_size: int, folder: Path) -> LoadedTokenizer:
    if len(tokenizer) < source_size:
        raise ValueError(f"the tokenizer built from {folder} ({built_from}) has {len(tokenizer)} tokens, fewer than "
                         f"the {source_size} of its vocabulary file")
    ids = tokenizer.encode(CHECK_TEXT, add_special_tokens=False)
    decoded = tokenizer.decode(ids)
    if decoded != CHECK_TEXT or len(ids) >= len(CHECK_TEXT.encode()):
        raise ValueError(f"the tokenizer built from {folder} ({built_from}) does not give text back: {CHECK_TEXT!r} "
                         f"becomes {len(ids)} tokens that decode to {decoded!r} (prompts and answers need their "
                         "digits, newlines and non-ASCII characters)")
    return LoadedTokenizer(tokenizer, built_from, built=True)


def _read_vocab(path: Path) -> dict[str, int]:
    try:
        vocab = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from None
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise ValueError(f"{path}: expected one JSON object mapping each token to its id")
    return vocab


def _read_merges(path: Path) -> list[tuple[str, str]]:
    merges = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise ValueError(f"{path}:{number}: expected two tokens separated by one space, got {line!r}")
        merges.append((pair[0], pair[1]))
    return merges


def _byte_level_bpe(folder: Path) -> tuple[PreTrainedTokenizerBase, str, int]:
    """The tokenizer, how it was read, the size of vocab.json."""
    from transformers import GPT2Tokenizer, Qwen2Tokenizer
    vocab, merges = _read_vocab(folder / "vocab.json"), _read_merges(folder / "merges.txt")
    source = " + ".join(BPE_FILES)
    # transformers 5 takes the vocabulary and merges themselves (not file names) as keywords.
    if GPT2_EOS in vocab:
        tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges)
        return tokenizer, f"{source}, GPT-2 style ({GPT2_EOS} in the vocabulary)", len(vocab)
    size = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)  # appends its EOS, <|endoftext|>
    tokenizer.add_special_tokens({"additional_special_tokens": [token for token in QWEN2_SPECIAL_TOKENS
                                                                if token not in vocab]})
    return tokenizer, (f"{source}, Qwen2 style (no {GPT2_EOS} in the vocabulary: Qwen2's pre-tokenizer, "
                       f"{', '.join(QWEN2_SPECIAL_TOKENS)} appended as special tokens)"), size


def _read_sentencepiece_proto(path: Path):
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except DecodeError as error:
        raise ValueError(f"{path}: not a SentencePiece model ({error})") from None
    if not proto.pieces:
        raise ValueError(f"{path}: a SentencePiece model without pieces")
    return proto


def _sentencepiece_roles(proto) -> dict[str, str]:
    """{"bos": "<s>", ...} for the roles the model defines (an id < 0 means none)."""
    spec = proto.trainer_spec
    ids = {"bos": spec.bos_id, "eos": spec.eos_id, "unk": spec.unk_id, "pad": spec.pad_id}
    return {name: proto.pieces[index].piece for name, index in ids.items() if 0 <= index < len(proto.pieces)}


def _sentencepiece(path: Path) -> tuple[PreTrainedTokenizerBase, str, int]:
    """The tokenizer, how it was read, the number of pieces."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers.tokenization_utils_base import generate_merges

    proto = _read_sentencepiece_proto(path)
    spec, normalizer = proto.trainer_spec, proto.normalizer_spec
    if spec.model_type != _SP_BPE:
        raise ValueError(f"{path}: a SentencePiece {_SP_MODEL_TYPES.get(spec.model_type, spec.model_type)} model; "
                         "only BPE models (Llama, Mistral, Gemma) are converted here: save its tokenizer.json "
                         "with the library that made it")
    if spec.treat_whitespace_as_suffix or not normalizer.escape_whitespaces:
        raise ValueError(f"{path}: its SentencePiece whitespace handling (as suffix {spec.treat_whitespace_as_suffix}, "
                         f"escaped {normalizer.escape_whitespaces}) is not converted here: save its tokenizer.json "
                         "with the library that made it")
    user_defined = [piece.piece for piece in proto.pieces if piece.type == _SP_USER_DEFINED]
    if user_defined:
        raise ValueError(f"{path}: its user-defined pieces ({', '.join(user_defined[:5])}) are matched inside the "
                         "text by SentencePiece, which a converted tokenizer does not reproduce: save its "
                         "tokenizer.json with the library that made it")
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    roles = _sentencepiece_roles(proto)
    # Merged pieces are the normal ones, ranked by score as SentencePiece's BPE merges them;
    # control, unknown, byte and unused pieces are never made from text.
    normal = {piece.piece: piece.score for piece in proto.pieces if piece.type == _SP_NORMAL}
    merges = generate_merges(vocab, normal, skip_tokens=set(vocab) - set(normal))
    backend = Tokenizer(BPE(vocab=vocab, merges=merges, unk_token=roles.get("unk"), fuse_unk=True,
                            byte_fallback=spec.byte_fallback, dropout=None))
    steps = [normalizers.Precompiled(normalizer.precompiled_charsmap)] if normalizer.precompiled_charsmap else []
    if normalizer.remove_extra_whitespaces:
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]  # spaces only
    if normalizer.add_dummy_prefix:
        steps.append(normalizers.Prepend("▁"))
    steps.append(normalizers.Replace(" ", "▁"))
    backend.normalizer = normalizers.Sequence(steps)
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                        + ([decoders.Strip(" ", 1, 0)] if normalizer.add_dummy_prefix else []))
    if "bos" in roles:
        bos = roles["bos"]
        backend.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])])
    backend.add_special_tokens([AddedToken(piece.piece, special=True, normalized=False)
                                for piece in proto.pieces if piece.type in (_SP_CONTROL, _SP_UNKNOWN)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **{f"{name}_token": token
                                                                     for name, token in roles.items()})
    return tokenizer, f"{SENTENCEPIECE_MODEL}, SentencePiece BPE ({len(proto.pieces)} pieces)", len(proto.pieces)
