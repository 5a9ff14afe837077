"""The token-level training loop: SFT, KD and SeqKD (one task stream), step-by-step and DSS-KD
(a label and a rationale stream); the method is the objective plus the streams.

One optimizer step = one GLOBAL batch of items from `GlobalBatchSampler`; an item brings one row
per task stream that has it, so both tasks of a question share a batch and a forward pass. The
loss is Σ_s weight_s · (token mean of the objective over stream s's supervised tokens in the
global batch): each sequence's loss sum is scaled by world × accumulation × weight_s / N_s, so
after DeepSpeed's averaging over ranks and accumulation steps the gradient is exact whatever the
device count. With one stream this is the plain token mean of the global batch.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field

import torch

from minillm import checkpoint
from minillm.args import sampling_config
from minillm.data.datasets import collate_sft, shard_for_rank
from minillm.engine import all_reduce_sum
from minillm.evaluation import generate_texts, score_generations
from minillm.fileio import atomic_write_json
from minillm.losses import IGNORE_INDEX
from minillm.objectives import Objective
from minillm.training_setup import TrainingSetup, restore_run


@dataclass
class TrainState:
    """What a resumed run needs beyond the weights, optimizer and scheduler."""
    step: int = 0
    tokens: int = 0  # input tokens consumed (all ranks)
    supervised_tokens: int = 0
    tokens_by_stream: dict = field(default_factory=dict)  # task stream -> its input tokens (budgets by data source)
    train_seconds: float = 0.0
    history: list = field(default_factory=list)  # evaluation records
    skipped_steps: int = 0  # non-finite loss or gradient: no optimizer update (minillm.guard)


class TokenTrainer:
    def __init__(self, args: argparse.Namespace, setup: TrainingSetup, objective: Objective):
        self.args = args
        self.dist = setup.dist
        self.engine = setup.engine
        self.tokenizer = setup.tokenizer
        self.train_set = setup.train_set
        self.valid_set = setup.valid_set
        self.valid_streams = setup.valid_streams
        self.plan = setup.plan
        self.sampler = setup.sampler
        self.total_steps = setup.total_steps
        self.objective = objective
        self.log = setup.log
        self.sync_ranks = setup.sync_ranks
        self.setup = setup
        self.eval_interval = args.eval_interval or self.sampler.steps_per_epoch
        self.guard = setup.guard
        self.state = TrainState()

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.dist.device, non_blocking=True) for k, v in batch.items()}

    def train(self) -> TrainState:
        restored = restore_run(self.args, self.setup)
        if restored is not None:
            self.state = TrainState(**restored.client_state["train_state"])
        self.log.info(f"{self.plan.describe()}; {self.sampler.steps_per_epoch} steps per epoch, "
                      f"{self.total_steps} steps in all, evaluation every {self.eval_interval} steps")
        stop_at = self.total_steps
        if getattr(self.args, "stop_after_steps", 0):
            stop_at = min(stop_at, self.state.step + self.args.stop_after_steps)
        self.engine.train()
        self.log.progress(self.total_steps, initial=self.state.step)
        window: dict[str, float] = {}
        window_steps = 0
        while self.state.step < stop_at:
            started = time.time()
            stats = self._train_step(self.state.step)
            self.state.step += 1
            self.state.train_seconds += time.time() - started
            if self.guard.after_step(self.state.step, [stats["loss"]],
                                     self.sampler.global_indices(self.state.step - 1).tolist()):
                for name, value in stats.items():
                    window[name] = window.get(name, 0.0) + value
                window_steps += 1
            else:
                self.state.skipped_steps += 1
            self.log.advance(1, loss=stats["loss"])
            step = self.state.step
            if window_steps and (step % self.args.log_interval == 0 or step == self.total_steps):
                record = {k: v / window_steps for k, v in window.items()}
                self.log.metrics({"step": step, "epoch": self.sampler.epoch_of(step - 1), **record,
                                  "lr": self.engine.get_lr()[0], "tokens": self.state.tokens})
                window, window_steps = {}, 0
            if step % self.eval_interval == 0 or step == self.total_steps:
                self._evaluate_and_save(step)
        self.log.close_progress()
        if self.state.step < self.total_steps and self.state.step % self.eval_interval:
            checkpoint.save_training_state(self.engine, self.args.save, self.state.step,
                                           {"train_state": vars(self.state)}, self.dist.rank)
            self.log.info(f"stopped at step {self.state.step}; continue with --resume")
        return self.state

    def _train_step(self, step: int) -> dict[str, float]:
        micro = self.sampler.micro_batches(step, self.dist.rank, self.dist.world_size, self.plan.micro_batch)
        pad, streams = self.tokenizer.pad_token_id, len(self.train_set.names)
        batches = []
        for indices in micro:
            rows = [row for i in indices for row in self.train_set.examples(int(i))]
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
        row_scale = torch.tensor([self.dist.world_size * self.plan.accumulation * w / max(n, 1.0)
                                  for w, n in zip(self.train_set.weights, supervised)])
        sums: dict[str, list[float]] = {}
        for batch in batches:
            batch = self._to_device(batch)
            loss_rows, parts = self.objective(self.engine, batch)
            self.guard.backward((loss_rows * row_scale.to(loss_rows.device)[batch["stream"]]).sum())
            self.engine.step()
            for name, rows in {"loss": loss_rows.detach(), **parts}.items():
                added = per_stream_sums(batch["stream"], rows, streams)
                sums[name] = [a + b for a, b in zip(sums.get(name, [0.0] * streams), added)]
        names = sorted(sums)
        reduced = all_reduce_sum([v for n in names for v in sums[n]], self.dist.device)
        sums = {n: reduced[k * streams:(k + 1) * streams] for k, n in enumerate(names)}
        self.state.tokens += int(sum(stream_tokens))
        self.state.supervised_tokens += int(sum(supervised))
        for name, count in zip(self.train_set.names, stream_tokens):
            self.state.tokens_by_stream[name] = self.state.tokens_by_stream.get(name, 0) + int(count)
        return combine_streams(self.train_set.names, self.train_set.weights, supervised, sums)

    @torch.no_grad()
    def validation_loss(self) -> dict[str, float]:
        """Every objective part over each task's whole validation split, combined as in training."""
        self.engine.eval()
        pad, size = self.tokenizer.pad_token_id, self.plan.micro_batch
        counts, sums = [], {}
        for k, stream in enumerate(self.valid_streams):
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
                sums.setdefault(name, [0.0] * len(self.valid_streams))[k] = value
        names = sorted(sums)
        totals = all_reduce_sum(counts + [v for n in names for v in sums[n]], self.dist.device)
        streams = len(self.valid_streams)
        sums = {n: totals[streams + k * streams:streams + (k + 1) * streams] for k, n in enumerate(names)}
        self.engine.train()
        stats = combine_streams([s.name for s in self.valid_streams], [s.weight for s in self.valid_streams],
                                totals[:streams], sums)
        return {("valid_loss" if n == "ce" else f"valid_{n}"): v for n, v in stats.items()}

    def validation_generation(self) -> dict[str, float]:
        """Sampled Rouge-L / exact match on validation prompts against the gold responses."""
        count = len(self.valid_set) if self.args.eval_gen_num == 0 else min(self.args.eval_gen_num, len(self.valid_set))
        if self.args.eval_gen_num < 0 or count == 0:
            return {}
        prompts = [self.valid_set.prompt(i) for i in range(count)]
        texts = generate_texts(self.engine.module, self.tokenizer, prompts, sampling_config(self.args),
                               seed=self.args.seed, dist_info=self.dist,
                               max_prompt_length=self.args.max_prompt_length,
                               batch_tokens=self.args.eval_batch_tokens, sync_ranks=self.sync_ranks,
                               logger=self.log, desc="validate").texts
        return score_generations(texts, self.valid_set.references()[:count], self.valid_set.answers()[:count])

    def _evaluate_and_save(self, step: int) -> None:
        metrics = self.validation_loss()
        if self.guard.in_a_row:  # sampling from weights that just gave a NaN loss fails on NaN probabilities
            self.log.info(f"step {step}: no generation at this evaluation: the last step's loss was not finite")
        else:
            metrics.update(self.validation_generation())
        record = {"step": step, "epoch": self.sampler.epoch_of(step - 1), **metrics}
        self.state.history.append(record)
        self.log.metrics({"event": "eval", **record})
        path = f"{self.args.save}/{step}"
        checkpoint.save_hf_checkpoint(self.engine, self.tokenizer, path, self.dist.is_main,
                                      self.valid_set.task["prefix"])
        if self.dist.is_main:
            improved = checkpoint.update_best(self.args.save, metrics, step, path)
            if improved:
                self.log.info(f"step {step}: new best by {', '.join(improved)} -> {path}")
        checkpoint.save_training_state(self.engine, self.args.save, step,
                                       {"train_state": vars(self.state)}, self.dist.rank)


def per_stream_sums(stream: torch.Tensor, rows: torch.Tensor, streams: int) -> list[float]:
    """Σ of per-sequence values `rows` [B] by task stream (`stream` [B]) → `streams` floats."""
    totals = torch.zeros(streams, dtype=torch.float64).index_add_(0, stream.cpu(), rows.detach().double().cpu())
    return totals.tolist()


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


def finish_run(setup: TrainingSetup, state) -> None:
    """After a complete run: `final.json` (steps, the state's token counters, time, evaluations,
    best) for reports. `state` is any run state with step, train_seconds and history."""
    if setup.dist.is_main and state.step == setup.total_steps:
        counters = {k: v for k, v in vars(state).items() if k not in ("step", "train_seconds", "history")}
        summary = {"steps": state.step, **counters, "train_seconds": round(state.train_seconds, 1),
                   "evaluations": state.history, "best": checkpoint.read_best(setup.log.run_dir)}
        atomic_write_json(setup.log.run_dir / "final.json", summary)
        setup.log.info(f"done: {state.step} steps; best: {json.dumps(summary['best'])}")
    setup.log.close()
