"""The finite-loss guard of the training loops: an optimizer step whose loss or gradient is NaN or
infinite is skipped (counted, logged with its batch's items), and a run that produces
`--max-nonfinite-steps` of them in a row stops with an error instead of training on.

Skipping uses DeepSpeed's own machinery, so a normal step is computed and taken exactly as
without the guard: DeepSpeed skips an update whose gradient is not finite (ZeRO's overflow
check; under ZeRO stage 0, `SkippingAdamW` below), counts it and holds the lr scheduler. A
micro-batch whose loss is not finite is back-propagated as NaN, so that its gradient, summed over
accumulation steps and ranks, triggers that skip on every rank even where the loss's own gradient
would have been finite.
"""
from __future__ import annotations

import math

import torch

from minillm.log import RunLogger


class SkippingAdamW(torch.optim.AdamW):
    """AdamW that leaves parameters and moments untouched when a gradient is NaN or infinite and
    says so in `overflow`, the attribute DeepSpeed reads to count a skipped step and hold the
    scheduler. Under ZeRO, DeepSpeed checks the gradients itself before calling this step."""

    overflow = False

    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        self.overflow = bool(grads) and not bool(torch.stack([g.isfinite().all() for g in grads]).all())
        if self.overflow:
            return None
        return super().step(closure)


class NonFiniteGuard:
    def __init__(self, engine, max_in_a_row: int, loss_scaling: bool, log: RunLogger):
        self.engine = engine
        self.max_in_a_row = max_in_a_row
        # fp16's dynamic loss scale skips steps on overflow by design (finding its scale): those
        # are not failures while the loss itself is finite.
        self.loss_scaling = loss_scaling
        self.log = log
        self.in_a_row = 0

    def backward(self, loss: torch.Tensor) -> None:
        """engine.backward(loss); a non-finite loss is back-propagated as NaN (see module doc)."""
        self.engine.backward(loss if bool(torch.isfinite(loss)) else loss * math.nan)

    def after_step(self, step: int, reduced_losses: list[float], items: list) -> bool:
        """After the step's last engine.step(): was it a finite step? `reduced_losses`: the
        step's loss terms summed over ranks (so every rank decides alike); `items`: what the
        batch held, for the log. Raises SystemExit after `max_in_a_row` non-finite steps."""
        loss_finite = all(math.isfinite(value) for value in reduced_losses)
        if loss_finite and (self.engine.was_step_applied() or self.loss_scaling):
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        reason = "loss" if not loss_finite else "gradient"
        self.log.metrics({"event": "skip", "step": step, "reason": f"non-finite {reason}", "items": items})
        self.log.info(f"step {step}: non-finite {reason}; optimizer step skipped ({self.in_a_row} in a row)")
        if self.in_a_row >= self.max_in_a_row:
            message = (f"error: steps {step - self.in_a_row + 1}-{step}: {self.in_a_row} optimizer steps in a row had "
                       f"a non-finite loss or gradient and were skipped (last: non-finite {reason}); the run has "
                       f"diverged or its data is broken (items of each step in log.jsonl, event 'skip'). Lower --lr, "
                       f"check the data, or allow more with --max-nonfinite-steps")
            self.log.info(message)
            raise SystemExit(message)
        return False
