"""Token-level training objectives: a batch → (per-sequence loss sums [B], named per-sequence sums).

Each value is a sum over a sequence's supervised tokens. Every objective reports "ce", the
language-modelling cross-entropy, which validation logs as `valid_loss`. The trainer weights
sequences (1 / supervised tokens of the global batch, times the weight of the sequence's task
stream), so objectives know nothing about batch sizes, devices or streams.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from minillm.data.cross_tokenizer import TextCodec, pair_batch
from minillm.losses import (
    IGNORE_INDEX,
    cross_entropy_rows,
    cross_tokenizer_divergence,
    divergence,
    topk_divergence,
)


class Objective(Protocol):
    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """batch: input_ids, attention_mask, position_ids, labels, each [B, T] → ([B], {name: [B]})."""


def _forward(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 position_ids=batch["position_ids"]).logits


def sft_objective(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    ce = cross_entropy_rows(_forward(model, batch), batch["labels"])
    return ce, {"ce": ce.detach()}


@dataclass
class KDObjective:
    """(1 − kd_ratio)·CE + kd_ratio·D(teacher ‖ student) over the supervised (response) tokens.

    The teacher is frozen (eval mode, no grad) and sees exactly the student's inputs, so its
    logits align position by position. D is a divergence of `minillm.losses` (the true value,
    teacher entropy included), compared over the shared `vocab_size` columns.

    teacher=None: the teacher is read from a teacher cache instead (minillm.data.teacher_cache): the
    batch brings teacher_ids [B, T, k] and teacher_log_probs [B, T, k + 1] (collate_sft of a
    CachedTeacherDataset, whose temperature was checked to be `temperature`), and D is
    `topk_divergence` (exact when k ≥ vocab_size; its docstring states the approximation).
    """
    teacher: torch.nn.Module | None
    kd_ratio: float
    kd_loss: str
    vocab_size: int
    temperature: float = 1.0
    chunk_size: int = 1024
    params: dict[str, float] = field(default_factory=dict)

    @property
    def reads_teacher_cache(self) -> bool:
        return self.teacher is None

    def __post_init__(self):
        if self.teacher is not None:
            self.teacher.eval()
            self.teacher.requires_grad_(False)

    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = _forward(model, batch)
        # At kd_ratio 1 the CE is only reported: no graph for a backward that would add zeros.
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.kd_ratio < 1):
            ce = cross_entropy_rows(logits, batch["labels"])
        settings = dict(reduction="rows", temperature=self.temperature, vocab_size=self.vocab_size,
                        chunk_size=self.chunk_size, **self.params)
        if self.teacher is None:
            if "teacher_ids" not in batch:
                raise ValueError("KDObjective without a teacher: the batch has no teacher records; open its dataset "
                                 "with minillm.data.teacher_cache.open_cached_dataset")
            kd = topk_divergence(self.kd_loss, logits, batch["teacher_ids"], batch["teacher_log_probs"],
                                 batch["labels"] != IGNORE_INDEX, **settings)
        else:
            with torch.no_grad():
                teacher_logits = _forward(self.teacher, batch)
            kd = divergence(self.kd_loss, logits, teacher_logits, batch["labels"] != IGNORE_INDEX, **settings)
        loss = (1.0 - self.kd_ratio) * ce + self.kd_ratio * kd
        return loss, {"ce": ce.detach(), "kd": kd.detach()}



@dataclass
class CrossTokenizerObjective:
    """(1 − kd_ratio)·CE + kd_ratio·D_x for a teacher whose tokenizer differs from the student's.

    Each row's prompt and response become text with the student's tokenizer and are encoded again
    by the teacher's (`minillm.data.cross_tokenizer.pair_batch`); the frozen teacher reads that
    text, and D_x sums a cross-tokenizer distance (`minillm.losses.cross_tokenizer_divergence`)
    over paired positions: "uld" pairs the i-th response tokens of both, in order, up to the shorter
    (Boizard et al. 2024); "aligned" pairs the tokens that start at the same byte of the response
    and compares the vocabulary entries both tokenizers spell alike directly with `kd_loss`, the
    rest by ULD's sorted distance. The trainer divides the sums by the student's supervised
    tokens, so D_x is per student response token. Response tokens from the student's EOS on are
    not paired (CE alone trains them).

    Besides "ce" and "kd" it reports "paired": the paired positions, so the logs show the share of
    the student's response tokens that had a teacher partner.
    """
    teacher: torch.nn.Module
    student_codec: TextCodec
    teacher_codec: TextCodec
    distance: str
    kd_ratio: float
    student_vocab_size: int
    teacher_vocab_size: int
    teacher_max_length: int
    vocabulary_map: tuple[torch.Tensor, torch.Tensor] | None = None
    kd_loss: str = "forward_kl"
    temperature: float = 1.0
    chunk_size: int = 1024
    params: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        self.teacher.eval()
        self.teacher.requires_grad_(False)

    def __call__(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = _forward(model, batch)
        ce = cross_entropy_rows(logits, batch["labels"])
        pairs = pair_batch(self.student_codec, self.teacher_codec, self.distance, batch["input_ids"].cpu(),
                           batch["labels"].cpu(), batch["attention_mask"].cpu(), self.teacher_max_length)
        device = logits.device
        with torch.no_grad():
            teacher_logits = _forward(self.teacher, {k: v.to(device) for k, v in pairs.inputs.items()})
        settings = dict(student_vocab_size=self.student_vocab_size, teacher_vocab_size=self.teacher_vocab_size,
                        reduction="rows", temperature=self.temperature, chunk_size=self.chunk_size)
        if self.distance == "aligned":
            settings.update(vocabulary_map=self.vocabulary_map, kd_loss=self.kd_loss, **self.params)
        kd = cross_tokenizer_divergence(self.distance, logits, teacher_logits, pairs.student_rows.to(device),
                                        pairs.teacher_rows.to(device), **settings)
        loss = (1.0 - self.kd_ratio) * ce + self.kd_ratio * kd
        paired = pairs.per_sequence(logits.shape[0], logits.shape[1]).to(device)
        return loss, {"ce": ce.detach(), "kd": kd.detach(), "paired": paired}
