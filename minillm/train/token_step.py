"""The token-level method of the training loop: SFT, KD and SeqKD (one task stream), step-by-step
and DSS-KD (a label and a rationale stream); the method is the objective plus the streams, and
optionally MiniLLM's pretraining term (the on-policy runs' control arms) and responses generated
during training instead of the data's (GKD, DistiLLM: minillm.train.response_source).

One optimizer step = one GLOBAL batch of items from `GlobalBatchSampler`; an item brings one row
per task stream that has it, so both tasks of a question share a batch and a forward pass. The
loss is Σ_s weight_s · (token mean of the objective over stream s's supervised tokens in the
global batch): each sequence's loss sum is scaled by world × accumulation × weight_s / N_s, so
after DeepSpeed's averaging over ranks and accumulation steps the gradient is exact whatever the
device count. With one stream this is the plain token mean of the global batch.
"""
from __future__ import annotations

import torch

from minillm.data.datasets import collate_sft, shard_for_rank
from minillm.distributed import all_reduce_sum
from minillm.losses import IGNORE_INDEX
from minillm.train.engine import per_stream_sums
from minillm.train.loop import StepResult
from minillm.train.objectives import Objective
from minillm.train.pretraining_term import PretrainingTerm
from minillm.train.response_source import (
    DATA,
    REPLAY,
    TEACHER,
    AdaptiveStudentOutputs,
    GKDResponses,
)
from minillm.train.setup import TrainingSetup
from minillm.train.validation import ValidationConfig, sampled_validation


class TokenStep:
    progress_key = "loss"

    def __init__(self, setup: TrainingSetup, objective: Objective, validation: ValidationConfig,
                 pretraining: PretrainingTerm | None = None,
                 responses: GKDResponses | AdaptiveStudentOutputs | None = None):
        self.setup, self.objective, self.validation, self.pretraining = setup, objective, validation, pretraining
        self.responses = responses
        self.evaluate_at_start = responses is not None and responses.needs_initial_validation
        self.dist, self.engine, self.plan, self.sampler = setup.dist, setup.engine, setup.plan, setup.sampler
        self.train_set = setup.train_set

    def describe(self) -> str:
        corpus = "" if self.pretraining is None else f"; + {self.pretraining.global_batch} pretraining chunks per step"
        generated = "" if self.responses is None else f"; {self.responses.describe()}"
        return f"{self.plan.describe()}; {self.sampler.steps_per_epoch} steps per epoch{corpus}{generated}"

    def position(self, step: int) -> dict:
        return {"epoch": self.sampler.epoch_of(step)}

    def state(self) -> tuple[dict, dict]:
        return self.responses.state() if self.responses is not None else ({}, {})

    def restore(self, shared: dict, own: dict) -> None:
        if self.responses is not None:
            self.responses.restore(shared, own)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.dist.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self, step: int, counters: dict) -> StepResult:
        micro = self.sampler.micro_batches(step, self.dist.rank, self.dist.world_size, self.plan.micro_batch)
        pad, streams = self.setup.tokenizer.pad_token_id, len(self.train_set.names)
        source = self.responses.kind(step) if self.responses is not None else DATA
        batches = []
        for micro_step, indices in enumerate(micro):
            rows = [row for i in indices for row in self.train_set.examples(int(i))]
            if source != DATA:
                rows = self.responses.rows(source, self.engine.module, rows, step, micro_step)
            batch = collate_sft([example for _, example in rows], pad)
            batch["stream"] = torch.tensor([stream for stream, _ in rows])
            batches.append(batch)
        supervised_rows = [(batch["labels"] != IGNORE_INDEX).sum(1) for batch in batches]
        local = [sum(values) for values in zip(*(per_stream_sums(b["stream"], rows, streams)
                                                 for b, rows in zip(batches, supervised_rows)))]
        local += [sum(values) for values in zip(*(per_stream_sums(b["stream"], b["attention_mask"].sum(1), streams)
                                                  for b in batches))]  # input tokens per stream
        totals = all_reduce_sum(local, self.dist.device)
        supervised, stream_tokens = totals[:streams], totals[streams:]
        scale = self.dist.world_size * self.plan.accumulation
        row_scale = torch.tensor([scale * w / max(n, 1.0) for w, n in zip(self.train_set.weights, supervised)])
        corpus_batches, corpus_tokens = self.pretraining.batches(step) if self.pretraining else ([], 0.0)
        sums: dict[str, list[float]] = {}
        corpus_sums: dict[str, float] = {}
        # Gradient accumulation: one backward per micro-batch; DeepSpeed applies the optimizer
        # update at the last engine.step() of the global batch.
        for k, batch in enumerate(batches):
            batch = self._to_device(batch)
            loss_rows, parts = self.objective(self.engine, batch)
            loss = (loss_rows * row_scale.to(loss_rows.device)[batch["stream"]]).sum()
            if corpus_batches:
                corpus_loss, corpus_parts = self.pretraining.loss(self.engine, corpus_batches[k], corpus_tokens, scale)
                loss = loss + corpus_loss
                for name, value in corpus_parts.items():
                    corpus_sums[name] = corpus_sums.get(name, 0.0) + float(value)
            self.setup.guard.backward(loss)
            self.engine.step()
            for name, rows in {"loss": loss_rows.detach(), **parts}.items():
                added = per_stream_sums(batch["stream"], rows, streams)
                sums[name] = [a + b for a, b in zip(sums.get(name, [0.0] * streams), added)]
        names, corpus_names = sorted(sums), sorted(corpus_sums)
        reduced = all_reduce_sum([v for n in names for v in sums[n]] + [corpus_sums[n] for n in corpus_names],
                                 self.dist.device)
        sums = {n: reduced[k * streams:(k + 1) * streams] for k, n in enumerate(names)}
        stats = combine_streams(self.train_set.names, self.train_set.weights, supervised, sums)
        stats.update({n: total / max(corpus_tokens, 1.0) for n, total in zip(corpus_names, reduced[len(names) * streams:])})
        counters["tokens"] = counters.get("tokens", 0) + int(sum(stream_tokens))
        counters["supervised_tokens"] = counters.get("supervised_tokens", 0) + int(sum(supervised))
        if source == DATA:
            by_stream = counters.setdefault("tokens_by_stream", {})
            for name, count in zip(self.train_set.names, stream_tokens):
                by_stream[name] = by_stream.get(name, 0) + int(count)
        else:  # generated responses: counted apart from the data's (the budget table's sources);
            # a replayed sample was counted when it was generated, as a rollout trained on for
            # several PPO epochs is
            kind = {TEACHER: "teacher_sampled_tokens", REPLAY: "replayed_tokens"}.get(source, "rollout_tokens")
            counters[kind] = counters.get(kind, 0) + int(sum(supervised))
        if self.pretraining is not None:
            counters["ptx_tokens"] = counters.get("ptx_tokens", 0) + int(corpus_tokens)
        return StepResult(stats, self.sampler.global_indices(step).tolist())

    def evaluate(self, generate: bool) -> dict[str, float]:
        metrics = self.validation_loss()
        if self.responses is not None:
            self.responses.after_validation(metrics["valid_loss"])
            metrics.update(self.responses.metrics())
        if generate:
            metrics.update(sampled_validation(self.setup, self.validation))
        return metrics

    @torch.no_grad()
    def validation_loss(self) -> dict[str, float]:
        """Every objective part over each task's whole validation split, combined as in training."""
        self.engine.eval()
        pad, size = self.setup.tokenizer.pad_token_id, self.plan.micro_batch
        valid_streams = self.setup.valid_streams
        counts, sums = [], {}
        for k, stream in enumerate(valid_streams):
            dataset = stream.dataset
            indices, real = shard_for_rank(len(dataset), self.dist.rank, self.dist.world_size)
            count, stream_sums = 0.0, {}
            for start in range(0, len(indices), size):
                batch = collate_sft([dataset.example(i) for i in indices[start:start + size]], pad)
                fake = torch.tensor([not r for r in real[start:start + size]])
                batch["labels"][fake] = IGNORE_INDEX  # rank padding must not count
                count += float((batch["labels"] != IGNORE_INDEX).sum())
                _, parts = self.objective(self.engine, self._to_device(batch))
                for name, rows in parts.items():
                    stream_sums[name] = stream_sums.get(name, 0.0) + float(rows.sum())
            counts.append(count)
            for name, value in stream_sums.items():
                sums.setdefault(name, [0.0] * len(valid_streams))[k] = value
        names = sorted(sums)
        totals = all_reduce_sum(counts + [v for n in names for v in sums[n]], self.dist.device)
        streams = len(valid_streams)
        sums = {n: totals[streams + k * streams:streams + (k + 1) * streams] for k, n in enumerate(names)}
        self.engine.train()
        stats = combine_streams([s.name for s in valid_streams], [s.weight for s in valid_streams],
                                totals[:streams], sums)
        return {("valid_loss" if n == "ce" else f"valid_{n}"): v for n, v in stats.items()}


def combine_streams(names: list[str], weights: list[float], counts: list[float],
                    sums: dict[str, list[float]]) -> dict[str, float]:
    """Per part, Σ_s weight_s · sum_s / count_s (the training objective's combination), plus each
    stream's own mean as `{part}_{stream}` when there are several streams."""
    stats = {}
    for part, per_stream in sums.items():
        means = [total / max(count, 1.0) for total, count in zip(per_stream, counts)]
        stats[part] = sum(w * m for w, m in zip(weights, means))
        if len(names) > 1:
            stats.update({f"{part}_{name}": m for name, m in zip(names, means)})
    return stats
