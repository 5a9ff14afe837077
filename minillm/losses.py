"""Loss functions: pure functions of tensors with documented shapes.

Token losses are returned as SUMS over supervised positions; the trainer divides by the number
of supervised tokens in the whole global batch, so the gradient does not depend on how the batch
is split over devices and accumulation steps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Σ over positions with labels != -100 of -log softmax(logits)[label].

    logits: [B, T, V] (any float dtype; the math runs in fp32), labels: [B, T] → scalar.
    """
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX,
                           reduction="sum")
