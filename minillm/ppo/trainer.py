"""MiniLLM's on-policy loop (ref §6): collect rollouts with the current policy, run `ppo_epochs`
passes of mini-batches over them, discard, repeat.

Per optimizer step, over one GLOBAL mini-batch of rollouts (plus one batch of the pretraining
corpus when given):
  loss = PPO-clipped policy loss (importance weight folded into the ratio)
       + single-step reverse KL over the vocabulary      (token means over response tokens)
       + (1 − kd_ratio)·CE + kd_ratio·KD on the corpus   (token mean, weight 1)
Token means are over the global mini-batch (the trainer scales sums as in trainer.py), so the
algorithm is the same on any number of ranks. With step-by-step task streams (DSS-MiniLLM) the
prompts of every task form one pool; the rollout terms become Σ_s weight_s · (token mean over
stream s's response tokens).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from minillm import checkpoint
from minillm.args import sampling_config
from minillm.data.datasets import GlobalBatchSampler, PairedStreams, TokenDataset, collate_sft
from minillm.engine import BatchPlan, all_reduce_sum
from minillm.evaluation import generate_texts, score_generations
from minillm.generation import SamplingConfig
from minillm.losses import IGNORE_INDEX
from minillm.objectives import KDObjective
from minillm.ppo import losses as ppo
from minillm.ppo.rollouts import Rollouts, collate_rollouts, collect, whiten_minibatch
from minillm.trainer import per_stream_sums
from minillm.training_setup import TrainingSetup, restore_run


@dataclass
class MiniLLMState:
    step: int = 0
    rollout_tokens: int = 0  # response tokens sampled (all ranks)
    ptx_tokens: int = 0  # pretraining-corpus tokens trained on (all ranks; the budget table's "pretraining")
    train_seconds: float = 0.0
    history: list = field(default_factory=list)
    skipped_steps: int = 0  # non-finite loss or gradient: no optimizer update (minillm.guard)


class MiniLLMTrainer:
    def __init__(self, args: argparse.Namespace, setup: TrainingSetup, teacher: torch.nn.Module, vocab_size: int,
                 prompts: PairedStreams, ptx: TokenDataset | None, ptx_objective: KDObjective | None):
        self.args, self.setup = args, setup
        self.dist, self.engine, self.log = setup.dist, setup.engine, setup.log
        self.teacher, self.vocab_size = teacher, vocab_size
        self.prompts, self.ptx, self.ptx_objective = prompts, ptx, ptx_objective
        self.prompt_pool = prompts.pooled()  # (stream, item) of every task's prompts
        self.plan: BatchPlan = setup.plan  # the GLOBAL mini-batch of rollouts per optimizer step
        world = self.dist.world_size
        self.rollouts_per_rank = args.num_rollouts // world
        self.minibatches_per_epoch = args.num_rollouts // args.batch_size
        self.steps_per_collection = args.ppo_epochs * self.minibatches_per_epoch
        self.prompt_sampler = GlobalBatchSampler(len(self.prompt_pool), args.num_rollouts, args.seed)
        self.ptx_sampler = (GlobalBatchSampler(len(ptx), args.ptx_batch_size, args.seed)
                            if ptx is not None else None)
        self.ptx_micro = args.ptx_batch_size // (world * self.plan.accumulation) if ptx is not None else 0
        self.config = SamplingConfig(max_new_tokens=args.max_new_tokens)  # rollouts: pure ancestral sampling
        self.state = MiniLLMState()
        self.rollouts: Rollouts | None = None
        self.collection_stats: dict[str, float] = {}

    # -- rollouts -----------------------------------------------------------------------------
    def _collect(self, collection: int) -> None:
        share = self.prompt_sampler.micro_batches(collection, self.dist.rank, self.dist.world_size,
                                                  self.rollouts_per_rank)[0]
        generator = torch.Generator(device=self.dist.device).manual_seed(
            (self.args.seed * 1_000_003 + collection) * 1009 + self.dist.rank)
        started = time.time()
        chosen = [self.prompt_pool[int(i)] for i in share]
        self.rollouts = collect(
            self.engine.module, self.teacher, [self.prompts.streams[s].dataset.prompt(i) for s, i in chosen],
            streams=[s for s, _ in chosen], config=self.config,
            teacher_mix=self.args.teacher_mix_alpha, reward_scaling=self.args.reward_scaling,
            reward_clip=self.args.reward_clip, gamma=self.args.gamma, length_norm=not self.args.no_length_norm,
            eos_token_id=self.setup.tokenizer.eos_token_id, pad_token_id=self.setup.tokenizer.pad_token_id,
            max_prompt_length=self.args.max_prompt_length, batch_size=self.args.rollout_batch_size,
            generator=generator, device=self.dist.device, sync_ranks=self.setup.sync_ranks,
            whiten=self.args.whiten)
        stats = self.rollouts.statistics()
        tokens, = all_reduce_sum([float(self.rollouts.mask.sum())], self.dist.device)
        totals = all_reduce_sum([stats[k] for k in sorted(stats)], self.dist.device)
        self.collection_stats = {k: v / self.dist.world_size for k, v in zip(sorted(stats), totals)}
        self.collection_stats["rollout_seconds"] = round(time.time() - started, 2)
        self.state.rollout_tokens += int(tokens)

    def _minibatch_indices(self, step: int) -> list[np.ndarray]:
        """This rank's rollouts for `step`, split into micro-batches: each PPO epoch is a fresh
        seeded permutation of the collection."""
        within = step % self.steps_per_collection
        epoch, block = divmod(within, self.minibatches_per_epoch)
        collection = step // self.steps_per_collection
        rng = np.random.default_rng([self.args.seed, collection, epoch, self.dist.rank])
        order = rng.permutation(self.rollouts_per_rank)
        per_rank = self.plan.per_rank
        mine = order[block * per_rank:(block + 1) * per_rank]
        return [mine[i:i + self.plan.micro_batch] for i in range(0, per_rank, self.plan.micro_batch)]

    # -- one optimizer step -------------------------------------------------------------------
    def _policy_terms(self, batch: dict, row_scale: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The rollout terms, each sequence weighted by `row_scale` [B] (normalisation × stream weight)."""
        start, width = batch["response_start"], batch["mask"].shape[1]
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
        logits = self.engine(**inputs).logits[:, start - 1:start - 1 + width]
        logprobs = logits.float().log_softmax(-1).gather(2, batch["responses"][:, :, None]).squeeze(2)
        pg, stats = ppo.policy_loss(logprobs, batch["old_logprobs"], batch["weights"], batch["advantages"],
                                    batch["mask"] * row_scale[:, None], self.args.clip_eps)
        total, parts = pg, {"pg_loss": pg.detach(), **stats}
        if not self.args.no_single_step_reg:
            with torch.no_grad():
                teacher_logits = self.teacher(**inputs).logits[:, start - 1:start - 1 + width]
            reg = ppo.single_step_regulariser(logits, teacher_logits, batch["mask"], self.vocab_size, row_scale)
            total = total + reg
            parts["reg_loss"] = reg.detach()
        return total, parts

    def _train_step(self, step: int) -> dict[str, float]:
        micro = self._minibatch_indices(step)
        tok = self.setup.tokenizer
        rollouts = self.rollouts
        if self.args.whiten == "reference":
            rollouts = whiten_minibatch(rollouts, np.concatenate(micro), self.dist.device)
        batches = [collate_rollouts(rollouts, idx, tok.pad_token_id, self.args.max_prompt_length,
                                    self.dist.device) for idx in micro]
        ptx_batches = []
        if self.ptx is not None:
            ptx_ids = self.ptx_sampler.micro_batches(step, self.dist.rank, self.dist.world_size, self.ptx_micro)
            ptx_batches = [{k: v.to(self.dist.device) for k, v in
                            collate_sft([self.ptx.example(int(i)) for i in ids], tok.pad_token_id).items()}
                           for ids in ptx_ids]
        streams = len(self.prompts.streams)
        local = [sum(values) for values in zip(*(per_stream_sums(b["stream"], b["mask"].sum(1), streams)
                                                 for b in batches))]
        local.append(sum(float((b["labels"] != IGNORE_INDEX).sum()) for b in ptx_batches))
        totals = all_reduce_sum(local, self.dist.device)
        rl_tokens, ptx_tokens = totals[:streams], totals[streams]
        self.state.ptx_tokens += int(ptx_tokens)
        scale = self.dist.world_size * self.plan.accumulation
        stream_scale = torch.tensor([scale * w / max(n, 1.0) for w, n in zip(self.prompts.weights, rl_tokens)],
                                    device=self.dist.device)
        sums: dict[str, float] = {}
        for k, batch in enumerate(batches):
            loss, parts = self._policy_terms(batch, stream_scale[batch["stream"]])
            if ptx_batches:
                pt_rows, pt_parts = self.ptx_objective(self.engine, ptx_batches[k])
                loss = loss + pt_rows.sum() * (scale / max(ptx_tokens, 1.0))
                parts = {**parts, "pt_loss": pt_rows.detach().sum(),
                         **{f"pt_{n}": v.sum() for n, v in pt_parts.items()}}
            self.setup.guard.backward(loss)
            self.engine.step()
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value)
        names = sorted(sums)
        reduced = dict(zip(names, all_reduce_sum([sums[n] for n in names], self.dist.device)))
        # pg_loss / reg_loss arrive weighted and normalised (× scale); the other stats are token sums.
        weighted = {"pg_loss", "reg_loss"}
        return {n: t / (scale if n in weighted else max(ptx_tokens if n.startswith("pt_") else sum(rl_tokens), 1.0))
                for n, t in reduced.items()}

    # -- the loop -----------------------------------------------------------------------------
    def train(self) -> MiniLLMState:
        args = self.args
        restored = restore_run(args, self.setup)
        if restored is not None:
            self.state = MiniLLMState(**restored.client_state["train_state"])
            self.collection_stats = restored.client_state["collection_stats"]
            saved = restored.rank_state.get("rollouts")
            self.rollouts = Rollouts.from_state(saved) if saved else None
        self.log.info(f"{args.num_rollouts} rollouts per collection ({self.rollouts_per_rank} per rank), "
                      f"{args.ppo_epochs} PPO epochs, {self.plan.describe()} rollouts per step -> "
                      f"{self.steps_per_collection} steps per collection, {args.total_steps} steps in all; "
                      f"pretraining corpus: {'none' if self.ptx is None else f'{args.ptx_batch_size} chunks per step'}")
        stop_at = min(args.total_steps, self.state.step + args.stop_after_steps) if args.stop_after_steps else args.total_steps
        if self.state.step == 0:  # the initialisation's numbers: the run's baseline (logged, not a candidate)
            self.log.metrics({"event": "eval", "step": 0, **self.evaluate()})
        self.engine.train()
        self.log.progress(args.total_steps, initial=self.state.step)
        while self.state.step < stop_at:
            started = time.time()
            if self.state.step % self.steps_per_collection == 0 or self.rollouts is None:
                self._collect(self.state.step // self.steps_per_collection)
            stats = self._train_step(self.state.step)
            self.state.step += 1
            self.state.train_seconds += time.time() - started
            step = self.state.step
            losses = [value for name, value in stats.items() if name.endswith("_loss")]
            finite = self.setup.guard.after_step(step, losses, self._collection_items(step - 1))
            self.state.skipped_steps += not finite
            self.log.advance(1, reward=self.collection_stats["reward"])
            if finite and (step % args.log_interval == 0 or step == args.total_steps):
                self.log.metrics({"step": step, **self.collection_stats, **stats, "lr": self.engine.get_lr()[0],
                                  "rollout_tokens": self.state.rollout_tokens})
            if step % self.setup_eval_interval == 0 or step == args.total_steps:
                self._evaluate_and_save(step)
        self.log.close_progress()
        if self.state.step < args.total_steps and self.state.step % self.setup_eval_interval:
            self._save_state(self.state.step)
            self.log.info(f"stopped at step {self.state.step}; continue with --resume")
        return self.state

    @property
    def setup_eval_interval(self) -> int:
        return self.args.eval_interval or self.steps_per_collection

    def _save_state(self, step: int) -> None:
        checkpoint.save_training_state(
            self.engine, self.args.save, step,
            {"train_state": vars(self.state), "collection_stats": self.collection_stats}, self.dist.rank,
            {"rollouts": self.rollouts.state() if self.rollouts is not None else None})

    def evaluate(self) -> dict[str, float]:
        """Sampled Rouge-L on validation prompts (the student alone, the evaluation protocol),
        scored by the teacher: reverse-KL estimate, per-token reward, mean response length."""
        valid = self.setup.valid_set
        count = len(valid) if self.args.eval_gen_num <= 0 else min(self.args.eval_gen_num, len(valid))
        out = generate_texts(self.engine.module, self.setup.tokenizer, [valid.prompt(i) for i in range(count)],
                             sampling_config(self.args), seed=self.args.seed, dist_info=self.dist,
                             max_prompt_length=self.args.max_prompt_length, batch_tokens=self.args.eval_batch_tokens,
                             sync_ranks=self.setup.sync_ranks, logger=self.log, desc="validate", teacher=self.teacher)
        log_ratio = np.asarray(out.teacher_logprobs) - np.asarray(out.student_logprobs)
        lengths = np.asarray(out.lengths, dtype=np.float64)
        return {**score_generations(out.texts, valid.references()[:count], valid.answers()[:count]),
                "rev_kl": float(-log_ratio.mean()), "reward": float(log_ratio.sum() / max(lengths.sum(), 1.0)),
                "response_len": float(lengths.mean())}

    def _collection_items(self, step: int) -> list[list[int]]:
        """(task stream, item) of the prompts behind this rank's rollouts of `step`'s collection."""
        share = self.prompt_sampler.micro_batches(step // self.steps_per_collection, self.dist.rank,
                                                  self.dist.world_size, self.rollouts_per_rank)[0]
        return [list(self.prompt_pool[int(i)]) for i in share]

    def _evaluate_and_save(self, step: int) -> None:
        if self.setup.guard.in_a_row:  # sampling from weights that just gave a NaN loss fails on NaN probabilities
            self.log.info(f"step {step}: no evaluation: the last step's loss was not finite")
            metrics = {}
        else:
            metrics = self.evaluate()
        record = {"step": step, **metrics}
        self.state.history.append(record)
        self.log.metrics({"event": "eval", **record})
        path = f"{self.args.save}/{step}"
        checkpoint.save_hf_checkpoint(self.engine, self.setup.tokenizer, path, self.dist.is_main,
                                      self.setup.valid_set.task["prefix"])
        if self.dist.is_main:
            improved = checkpoint.update_best(self.args.save, metrics, step, path)
            if improved:
                self.log.info(f"step {step}: new best by {', '.join(improved)} -> {path}")
        self._save_state(step)
