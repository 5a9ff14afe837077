"""Text shared by two tokenizers: what each token spells, which vocabulary entries spell the same
string in both, and which positions of two tokenizations of one text line up.

Everything works on BYTES (UTF-8), the one unit every byte-level BPE and every SentencePiece model
with byte fallback can express:
- a token's *surface* is the bytes it adds to the decoded text in mid-sequence: a byte-level BPE
  maps each character of its token string back to a byte (GPT-2's `Ġthe` → b" the"); a
  SentencePiece-style model writes a space as `▁` (`▁the` → b" the") and unknown bytes as
  `<0xXX>`; special tokens (BOS, EOS, pad) spell nothing (None);
- two tokenizations of the same text are aligned by the byte at which each token starts, counted
  from the start of the response: a student and a teacher token that start at the same byte are
  predicted from the same text (the same prompt and response prefix), so their next-token
  distributions can be compared. `starts_pairs` gives those pairs, `positional_pairs` ULD's
  alignment (the i-th response token of each, in order, truncated to the shorter).

SentencePiece-style tokenizers prepend a space to the text they encode (the dummy prefix) and strip
it when decoding; `TextCodec` measures that once and accounts for it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minillm.data.manifest import tokenizer_signature
from minillm.fileio import atomic_write_json
from minillm.losses import IGNORE_INDEX

SPACE_MARKER = "\u2581"  # SentencePiece's '▁'


def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the character that stands for each byte → that byte.

    Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls, space, ...) take
    the characters from U+0100 on, in byte order (so the space is `Ġ`, U+0120)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    alphabet = {chr(b): b for b in printable}
    others = [b for b in range(256) if b not in set(printable)]
    alphabet.update({chr(256 + k): b for k, b in enumerate(others)})
    return alphabet


def _decoder_kind(tokenizer) -> tuple[str, list[tuple[str, str]]]:
    """("byte_level", []) or ("pieces", [(pattern, replacement), ...]) read from the fast tokenizer's
    decoder; ValueError naming the decoder for any other kind."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"tokenizer {tokenizer.name_or_path!r} is not a fast (Rust `tokenizers`) tokenizer: its "
                         f"tokens' spelling cannot be read")
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    types = [part.get("type") for part in parts]
    if types == ["ByteLevel"]:
        return "byte_level", []
    replacements = []
    for part in parts:
        if part.get("type") == "Replace" and "String" in part.get("pattern", {}):
            replacements.append((part["pattern"]["String"], part["content"]))
        elif part.get("type") == "Metaspace":
            replacements.append((part.get("replacement", SPACE_MARKER), " "))
        elif part.get("type") not in ("ByteFallback", "Fuse", "Strip"):
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r}: its decoder {types} is neither byte-level BPE nor "
                             f"SentencePiece-style ('▁' for spaces, <0xXX> bytes); cross-tokenizer alignment supports "
                             f"those two")
    return "pieces", replacements


def token_surfaces(tokenizer) -> list[bytes | None]:
    """The bytes each token id adds to a decoded text in mid-sequence; None for special tokens.

    Indexed by id up to the largest id of `get_vocab()`; ids absent from the vocabulary are None."""
    kind, replacements = _decoder_kind(tokenizer)
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_ids) | {index for index, token in tokenizer.added_tokens_decoder.items()
                                                if token.special}
    alphabet = byte_level_alphabet() if kind == "byte_level" else {}
    surfaces: list[bytes | None] = [None] * (max(vocab.values()) + 1)
    for token, index in vocab.items():
        if index in special:
            continue
        if kind == "byte_level":
            if all(char in alphabet for char in token):
                surfaces[index] = bytes(alphabet[char] for char in token)
            else:  # an added (non-special) token is written as plain text
                surfaces[index] = token.encode()
        elif len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            surfaces[index] = bytes([int(token[3:5], 16)])
        else:
            for pattern, replacement in replacements:
                token = token.replace(pattern, replacement)
            surfaces[index] = token.encode()
    return surfaces


def _is_byte_fallback(token: str) -> bool:
    return len(token) == 6 and token.startswith("<0x") and token.endswith(">")


def _ids_by_surface(tokenizer) -> dict[bytes, int]:
    """surface → the one id that stands for it (see `vocabulary_map`)."""
    chosen: dict[bytes, int] = {}
    fallback: set[int] = set()
    for index, surface in enumerate(token_surfaces(tokenizer)):
        if surface is None:
            continue
        if _is_byte_fallback(tokenizer.convert_ids_to_tokens(index)):
            fallback.add(index)
        held = chosen.get(surface)
        if held is None or (held in fallback and index not in fallback):
            chosen[surface] = index
    return chosen


def vocabulary_map(student_tokenizer, teacher_tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """The vocabulary entries that spell the same bytes in both tokenizers, one to one:
    (student ids [M], teacher ids [M]), int64, by increasing teacher id.

    Special tokens never match. When one tokenizer has several ids for the same bytes
    (SentencePiece's byte-fallback `<0x61>` beside the piece `a`), the piece is kept: its encoder
    emits a byte token only for bytes no piece covers; among any other duplicates, the lowest id."""
    student, teacher = _ids_by_surface(student_tokenizer), _ids_by_surface(teacher_tokenizer)
    pairs = sorted((teacher[surface], student[surface]) for surface in teacher.keys() & student.keys())
    return (np.array([s for _, s in pairs], dtype=np.int64).reshape(-1),
            np.array([t for t, _ in pairs], dtype=np.int64).reshape(-1))


def cached_vocabulary_map(student_tokenizer, teacher_tokenizer, path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """`vocabulary_map`, read from the JSON file `path` when it was written for these two
    tokenizers (their token → id maps' sha256), else built and written there (atomically)."""
    path = Path(path)
    signatures = {"student": tokenizer_signature(student_tokenizer)["vocab_sha256"],
                  "teacher": tokenizer_signature(teacher_tokenizer)["vocab_sha256"]}
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("tokenizers") == signatures:
            return (np.array(cached["student_ids"], dtype=np.int64), np.array(cached["teacher_ids"], dtype=np.int64))
    student_ids, teacher_ids = vocabulary_map(student_tokenizer, teacher_tokenizer)
    atomic_write_json(path, {"tokenizers": signatures, "matched": len(student_ids),
                             "student_vocabulary": len(student_tokenizer), "teacher_vocabulary": len(teacher_tokenizer),
                             "student_ids": student_ids.tolist(), "teacher_ids": teacher_ids.tolist()})
    return student_ids, teacher_ids


def _first_difference(a: bytes, b: bytes) -> int:
    """The first index where a and b differ (the shorter length when one is a prefix of the other)."""
    size = min(len(a), len(b))
    differ = np.flatnonzero(np.frombuffer(a[:size], np.uint8) != np.frombuffer(b[:size], np.uint8))
    return int(differ[0]) if len(differ) else size


@dataclass(frozen=True)
class ResponseTokens:
    """The tokens of a response that can be aligned: their indices in the token sequence and the
    byte at which each starts, counted from the start of the response (both [n], increasing)."""
    positions: np.ndarray
    starts: np.ndarray


class TextCodec:
    """A tokenizer with its surfaces: token ids ↔ response bytes, and text → ids whose response
    tokens carry their byte offsets."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        surfaces = token_surfaces(tokenizer)
        self.lengths = np.array([len(s) if s is not None else 0 for s in surfaces], dtype=np.int64)
        self.special = np.array([s is None for s in surfaces], dtype=bool)
        self.surfaces = [s if s is not None else b"" for s in surfaces]
        # Bytes the tokenizer puts before the text it encodes (SentencePiece's dummy-prefix space).
        probe = "a"
        spelled = self.spell(tokenizer(probe, add_special_tokens=False)["input_ids"])
        if not spelled.endswith(probe.encode()):
            raise ValueError(f"tokenizer {tokenizer.name_or_path!r} does not spell {probe!r} back from its own tokens "
                             f"(got {spelled!r}): its surfaces cannot be trusted for alignment")
        self.lead = len(spelled) - len(probe.encode())

    def spell(self, ids) -> bytes:
        """The bytes of `ids`, special tokens spelling nothing."""
        return b"".join(self.surfaces[i] for i in ids)

    def response_bytes(self, response_ids) -> tuple[bytes, int]:
        """(the bytes of the response up to its first special token (EOS), how many tokens that is)."""
        ids = np.asarray(response_ids, dtype=np.int64)
        stops = np.flatnonzero(self.special[ids])
        count = int(stops[0]) if len(stops) else len(ids)
        return self.spell(ids[:count].tolist()), count

    def split_text(self, prompt_ids, response_ids) -> tuple[str, bytes, ResponseTokens]:
        """A tokenized (prompt, response) as (prompt text, response bytes, the response's tokens).

        The prompt is decoded as the tokenizer decodes it (special tokens dropped); the response
        is spelled token by token, so a leading space and bytes of an unfinished character
        survive. Response tokens from the first special token (EOS) on are not aligned."""
        prompt_text = self.tokenizer.decode(list(prompt_ids), skip_special_tokens=True)
        response, count = self.response_bytes(response_ids)
        lengths = self.lengths[np.asarray(response_ids, dtype=np.int64)[:count]]
        starts = np.cumsum(lengths) - lengths
        return prompt_text, response, ResponseTokens(np.arange(count, dtype=np.int64), starts)

    def encode_continuation(self, prompt_text: str, response: bytes) -> tuple[list[int], ResponseTokens]:
        """Token ids of prompt + response encoded as ONE text (with the tokenizer's special
        tokens, e.g. BOS), and its response tokens: those starting at or after the response's
        first byte. A token that spans the prompt/response boundary belongs to the prompt.

        Only bytes this tokenization spells back exactly are aligned: invalid UTF-8 in `response`
        (an unfinished character a byte-level model sampled) is decoded with replacement
        characters, and nothing from the first difference on is aligned."""
        text = prompt_text + response.decode("utf-8", errors="replace")
        ids = self.tokenizer(text)["input_ids"]
        spelled = self.spell(ids)
        response_start = self.lead + len(prompt_text.encode())
        exact = min(_first_difference(spelled[self.lead:], text.encode()) + self.lead,
                    response_start + _first_difference(text.encode()[len(prompt_text.encode()):], response))
        lengths = self.lengths[np.asarray(ids, dtype=np.int64)]
        starts = np.cumsum(lengths) - lengths
        keep = (starts >= response_start) & (starts < exact) & ~self.special[np.asarray(ids, dtype=np.int64)]
        positions = np.flatnonzero(keep)
        return ids, ResponseTokens(positions, starts[positions] - response_start)


def starts_pairs(student: ResponseTokens, teacher: ResponseTokens) -> tuple[np.ndarray, np.ndarray]:
    """Aligned-token pairs: (student positions, teacher positions) of the tokens of each that start
    at the same response byte, i.e. are predicted from the same text. A word that is one token for
    one tokenizer and three for the other gives one pair (at its first byte); the two tokens inside
    it have no partner."""
    _, student_index, teacher_index = np.intersect1d(student.starts, teacher.starts, assume_unique=True,
                                                     return_indices=True)
    return student.positions[student_index], teacher.positions[teacher_index]


def positional_pairs(student: ResponseTokens, teacher: ResponseTokens) -> tuple[np.ndarray, np.ndarray]:
    """ULD's alignment (Boizard et al. 2024): the i-th response token of each, in order, truncated to
    the shorter response, whatever text each token spells."""
    count = min(len(student.positions), len(teacher.positions))
    return student.positions[:count], teacher.positions[:count]


PAIRINGS = {"uld": positional_pairs, "aligned": starts_pairs}


@dataclass
class TeacherPairs:
    """The teacher's view of a student batch and the positions to compare.

    inputs: the teacher's input_ids, attention_mask, position_ids, each [B, T_t] (right-padded);
    student_rows / teacher_rows [N]: flat indices into B·T_s / B·T_t of the logits that predict each
    paired token (a token at index i is predicted by the logits at i − 1)."""
    inputs: dict[str, torch.Tensor]
    student_rows: torch.Tensor
    teacher_rows: torch.Tensor

    def per_sequence(self, batch_size: int, student_length: int) -> torch.Tensor:
        """Pairs per sequence, [B] (float)."""
        return torch.bincount(self.student_rows // student_length, minlength=batch_size).float()


def pair_batch(student: TextCodec, teacher: TextCodec, pairing: str, input_ids: torch.Tensor, labels: torch.Tensor,
               attention_mask: torch.Tensor, teacher_max_length: int) -> TeacherPairs:
    """Re-tokenize a student batch for the teacher and pair positions (`PAIRINGS[pairing]`).

    input_ids, labels, attention_mask [B, T_s] in `collate_sft`'s layout (labels = the next token,
    -100 off the response; a row's response is what follows its prompt). Each row's prompt and
    response are turned into text with the student's tokenizer and encoded as one text by the
    teacher's (`TextCodec.encode_continuation`), cut to `teacher_max_length` tokens. A row with no
    response gives the teacher a lone EOS and no pairs."""
    if pairing not in PAIRINGS:
        raise ValueError(f"unknown pairing {pairing!r}; choose from {sorted(PAIRINGS)}")
    sequences, pairs = [], []
    for row, (ids, targets, length) in enumerate(zip(input_ids.tolist(), labels.tolist(),
                                                     attention_mask.sum(1).tolist())):
        supervised = np.flatnonzero(np.asarray(targets[:length]) != IGNORE_INDEX)
        if not len(supervised):
            sequences.append([teacher.tokenizer.eos_token_id])
            continue
        first = int(supervised[0])  # labels[first] is the first response token, at index first + 1
        tokens = ids[:length] + [targets[length - 1]]
        prompt_text, response, student_tokens = student.split_text(tokens[:first + 1], tokens[first + 1:])
        teacher_ids, teacher_tokens = teacher.encode_continuation(prompt_text, response)
        teacher_ids = teacher_ids[:teacher_max_length]
        student_index, teacher_index = PAIRINGS[pairing](student_tokens, teacher_tokens)
        # A teacher token needs a position before it to be predicted, and must survive the cut.
        keep = (teacher_index >= 1) & (teacher_index < len(teacher_ids))
        pairs.append((row, first + student_index[keep], teacher_index[keep] - 1))
        sequences.append(teacher_ids)
    width = max(len(sequence) for sequence in sequences)
    teacher_ids = torch.full((len(sequences), width), teacher.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        teacher_ids[row, :len(sequence)] = torch.tensor(sequence)
        mask[row, :len(sequence)] = 1
    empty = np.zeros(0, dtype=np.int64)
    student_rows = np.concatenate([empty] + [row * input_ids.shape[1] + s for row, s, _ in pairs])
    teacher_rows = np.concatenate([empty] + [row * width + t for row, _, t in pairs])
    return TeacherPairs({"input_ids": teacher_ids, "attention_mask": mask,
                         "position_ids": torch.arange(width).expand(len(sequences), width).clone()},
                        torch.from_numpy(student_rows), torch.from_numpy(teacher_rows))


def shared_spans(student: ResponseTokens, student_lengths: np.ndarray, teacher: ResponseTokens,
                 teacher_lengths: np.ndarray, teacher_token_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's values summed over the spans both tokenizations cut alike, per student token.

    student / teacher: the response tokens of each (as `TextCodec` gives them: contiguous, in
    order), with each token's byte length ([n_s], [n_t]); teacher_token_values [n_t] (e.g. the
    teacher's log-probability of each of its tokens). A span runs between two consecutive bytes at
    which both have a token boundary; over it both spell the same bytes, so the sum of the teacher's
    log-probabilities there is log p_teacher(span | text before), the quantity the student's own
    tokens in the span also share. Returns (values [n_s]: each span's sum at its LAST student token,
    0 at the others; covered [n_s]: True for the student tokens inside a span). Where every span is
    one token on each side, values are the teacher's per-token values."""
    values = np.zeros(len(student.positions), dtype=np.float64)
    covered = np.zeros(len(student.positions), dtype=bool)
    if not len(student.positions) or not len(teacher.positions):
        return values, covered
    student_ends = student.starts + student_lengths
    teacher_bounds = np.append(teacher.starts, teacher.starts[-1] + teacher_lengths[-1])
    cuts = np.intersect1d(np.append(student.starts, student_ends[-1]), teacher_bounds)
    if len(cuts) < 2:
        return values, covered
    totals = np.concatenate([[0.0], np.cumsum(teacher_token_values, dtype=np.float64)])
    span_sums = np.diff(totals[np.searchsorted(teacher_bounds, cuts)])
    last = np.searchsorted(student_ends, cuts[1:])  # the student token that ends each span
    values[last] = span_sums
    covered[:] = (student.starts >= cuts[0]) & (student_ends <= cuts[-1])
    return values, covered
