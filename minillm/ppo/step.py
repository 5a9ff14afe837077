"""The on-policy method of the training loop: MiniLLM (ref §6) and, as another configuration of
the same step, on-policy distillation (minillm.args ON_POLICY_RECIPES). Collect rollouts with the
current policy, run `ppo_epochs` passes of mini-batches over them, discard, repeat.

Per optimizer step, over one GLOBAL mini-batch of rollouts (plus, optionally, the pretraining
term of minillm.train.pretraining_term):
  loss = PPO-clipped policy loss (importance weight folded into the ratio)
       + single-step reverse KL over the vocabulary      (token means over response tokens)
       + (1 − kd_ratio)·CE + kd_ratio·KD on the corpus   (token mean, weight 1)
Token means are over the global mini-batch (sums scaled as in minillm.train.token_step), so the
algorithm is the same on any number of ranks. With step-by-step task streams (DSS-MiniLLM) the
prompts of every task form one pool; the rollout terms become Σ_s weight_s · (token mean over
stream s's response tokens).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from minillm.data.datasets import GlobalBatchSampler, PairedStreams
from minillm.distributed import all_reduce_sum
from minillm.eval.generation import SamplingConfig
from minillm.ppo import losses as ppo
from minillm.ppo.cross_tokenizer import CrossTokenizerRolloutScorer
from minillm.ppo.rollouts import (
    WHITENING,
    Rollouts,
    collate_rollouts,
    collect,
    single_step_term,
    scored_logprobs,
    whiten_minibatch,
)
from minillm.train.engine import per_stream_sums
from minillm.train.loop import StepResult
from minillm.train.pretraining_term import PretrainingTerm
from minillm.train.setup import TrainingSetup
from minillm.train.validation import ValidationConfig, sampled_validation


@dataclass(frozen=True)
class OnPolicyConfig:
    """Rollout collection and the PPO update (flags of minillm.args.add_minillm_args)."""
    num_rollouts: int  # GLOBAL, per collection
    ppo_epochs: int
    rollout_batch_size: int  # prompts per sampling batch, per rank
    max_new_tokens: int
    max_prompt_length: int
    teacher_mix_alpha: float
    reward_scaling: float
    reward_clip: float
    gamma: float
    length_norm: bool
    clip_eps: float | None  # None = no clipping
    single_step_reg: bool
    whiten: str  # one of minillm.ppo.rollouts.WHITENING
    seed: int
    teacher_logits_budget_mib: float = 0.0  # > 0: the single-step term reuses the sampler's teacher logits
    decode: str = "eager"  # the sampler's minillm.eval.generation.DECODE_MODES
    samples_per_prompt: int = 1  # rollouts of each drawn prompt in a collection (Tinker's group_size)
    loss_reduction: str = "mean"  # the rollout terms over tokens: minillm.ppo.losses.REDUCTIONS

    def __post_init__(self):
        if self.num_rollouts <= 0 or self.ppo_epochs <= 0 or self.rollout_batch_size <= 0 or self.max_new_tokens <= 0:
            raise ValueError("num_rollouts, ppo_epochs, rollout_batch_size and max_new_tokens must be positive")
        if not (0 <= self.teacher_mix_alpha <= 1 and 0 <= self.gamma <= 1 and self.reward_scaling > 0
                and (self.clip_eps is None or self.clip_eps > 0)):
            raise ValueError("need 0 ≤ teacher_mix_alpha ≤ 1, 0 ≤ gamma ≤ 1, reward_scaling > 0, clip_eps > 0 or None")
        if self.whiten not in WHITENING:
            raise ValueError(f"whiten must be one of {WHITENING}, got {self.whiten!r}")
        if self.samples_per_prompt <= 0 or self.loss_reduction not in ppo.REDUCTIONS:
            raise ValueError(f"need samples_per_prompt > 0 (got {self.samples_per_prompt}) and loss_reduction in "
                             f"{ppo.REDUCTIONS} (got {self.loss_reduction!r})")


class OnPolicyStep:
    progress_key = "reward"
    evaluate_at_start = True  # the initialisation's numbers: the run's baseline

    def __init__(self, setup: TrainingSetup, config: OnPolicyConfig, teacher: torch.nn.Module, vocab_size: int,
                 prompts: PairedStreams, validation: ValidationConfig, pretraining: PretrainingTerm | None = None,
                 teacher_terms: CrossTokenizerRolloutScorer | None = None):
        """teacher_terms: the teacher has another tokenizer and scores the finished rollouts (its
        rewards per shared span; no single-step term, no teacher-mixed sampling)."""
        if teacher_terms is not None and (config.single_step_reg or config.teacher_mix_alpha > 0):
            raise ValueError("a teacher with another tokenizer needs --no-single-step-reg and --teacher-mix-alpha 0 "
                             "(both compare the two models token by token)")
        self.teacher_terms = teacher_terms
        self.setup, self.config, self.validation, self.pretraining = setup, config, validation, pretraining
        self.dist, self.engine = setup.dist, setup.engine
        self.teacher, self.vocab_size, self.prompts = teacher, vocab_size, prompts
        self.prompt_pool = prompts.pooled()  # (stream, item) of every task's prompts
        self.plan = setup.plan  # the GLOBAL mini-batch of rollouts per optimizer step
        world = self.dist.world_size
        if config.num_rollouts % self.plan.global_batch or config.num_rollouts % (world * config.samples_per_prompt):
            raise ValueError(f"num_rollouts ({config.num_rollouts}) must be a multiple of the mini-batch "
                             f"({self.plan.global_batch}) and of ranks × samples per prompt ({world} × "
                             f"{config.samples_per_prompt})")
        self.rollouts_per_rank = config.num_rollouts // world
        self.minibatches_per_epoch = config.num_rollouts // self.plan.global_batch
        self.steps_per_collection = config.ppo_epochs * self.minibatches_per_epoch
        self.prompt_sampler = GlobalBatchSampler(len(self.prompt_pool), config.num_rollouts // config.samples_per_prompt,
                                                 config.seed)
        # rollouts: pure ancestral sampling
        self.sampling = SamplingConfig(max_new_tokens=config.max_new_tokens, decode=config.decode)
        self.rollouts: Rollouts | None = None
        self.collection_stats: dict[str, float] = {}

    def describe(self) -> str:
        corpus = "none" if self.pretraining is None else f"{self.pretraining.global_batch} chunks per step"
        groups = "" if self.config.samples_per_prompt == 1 else (
            f" ({self.config.samples_per_prompt} samples of each of {self.prompt_sampler.global_batch} prompts)")
        return (f"{self.config.num_rollouts} rollouts per collection{groups} ({self.rollouts_per_rank} per rank), "
                f"{self.config.ppo_epochs} PPO epochs, {self.plan.describe()} rollouts per step -> "
                f"{self.steps_per_collection} steps per collection; pretraining corpus: {corpus}"
                + ("; rollout terms summed over tokens" if self.config.loss_reduction == "sum" else "")
                + ("; advantages whitened per mini-batch over every response slot (LMOps)"
                   if self.config.whiten == "reference" else ""))

    def position(self, step: int) -> dict:
        return {}

    def state(self) -> tuple[dict, dict]:
        return ({"collection_stats": self.collection_stats},
                {"rollouts": self.rollouts.state() if self.rollouts is not None else None})

    def restore(self, shared: dict, own: dict) -> None:
        self.collection_stats = shared["collection_stats"]
        self.rollouts = Rollouts.from_state(own["rollouts"]) if own.get("rollouts") else None

    # -- rollouts -----------------------------------------------------------------------------
    def _collect(self, collection: int, counters: dict) -> None:
        config, tokenizer = self.config, self.setup.tokenizer
        share = self._prompt_share(collection)
        generator = torch.Generator(device=self.dist.device).manual_seed(
            (config.seed * 1_000_003 + collection) * 1009 + self.dist.rank)
        started = time.time()
        chosen = [self.prompt_pool[int(i)] for i in share]
        self.rollouts = collect(
            self.engine.module, self.teacher, [self.prompts.streams[s].dataset.prompt(i) for s, i in chosen],
            streams=[s for s, _ in chosen], config=self.sampling,
            teacher_mix=config.teacher_mix_alpha, reward_scaling=config.reward_scaling,
            reward_clip=config.reward_clip, gamma=config.gamma, length_norm=config.length_norm,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            max_prompt_length=config.max_prompt_length, batch_size=config.rollout_batch_size,
            generator=generator, device=self.dist.device, sync_ranks=self.setup.sync_ranks,
            whiten=config.whiten, vocab_size=self.vocab_size,
            teacher_logits_budget_mib=config.teacher_logits_budget_mib if config.single_step_reg else 0.0,
            teacher_terms=self.teacher_terms)
        stats = self.rollouts.statistics()
        tokens, = all_reduce_sum([float(self.rollouts.mask.sum())], self.dist.device)
        totals = all_reduce_sum([stats[k] for k in sorted(stats)], self.dist.device)
        self.collection_stats = {k: v / self.dist.world_size for k, v in zip(sorted(stats), totals)}
        self.collection_stats["rollout_seconds"] = round(time.time() - started, 2)
        counters["rollout_tokens"] = counters.get("rollout_tokens", 0) + int(tokens)

    def _minibatch_indices(self, step: int) -> list[np.ndarray]:
        """This rank's rollouts for `step`, split into micro-batches: each PPO epoch is a fresh
        seeded permutation of the collection."""
        within = step % self.steps_per_collection
        epoch, block = divmod(within, self.minibatches_per_epoch)
        collection = step // self.steps_per_collection
        rng = np.random.default_rng([self.config.seed, collection, epoch, self.dist.rank])
        order = rng.permutation(self.rollouts_per_rank)
        per_rank = self.plan.per_rank
        mine = order[block * per_rank:(block + 1) * per_rank]
        return [mine[i:i + self.plan.micro_batch] for i in range(0, per_rank, self.plan.micro_batch)]

    # -- one optimizer step -------------------------------------------------------------------
    def _policy_terms(self, batch: dict, row_scale: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The rollout terms, each sequence weighted by `row_scale` [B] (normalisation × stream weight)."""
        start, width = batch["response_start"], batch["mask"].shape[1]
        # The output projection only where a response token is predicted (prompts are left-padded
        # to the same width, so those positions are one range for every row).
        scored = torch.arange(start - 1, start - 1 + width, device=batch["input_ids"].device)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}
        logits = self.engine(**inputs, logits_to_keep=scored).logits
        logprobs = scored_logprobs(logits, batch["responses"], batch["mask"])
        pg, stats = ppo.policy_loss(logprobs, batch["old_logprobs"], batch["weights"], batch["advantages"],
                                    batch["mask"] * row_scale[:, None], self.config.clip_eps)
        total, parts = pg, {"pg_loss": pg.detach(), **stats}
        if self.config.single_step_reg:
            reg = single_step_term(logits, batch, lambda: self.teacher(**inputs, logits_to_keep=scored).logits,
                                   self.vocab_size, row_scale)
            total = total + reg
            parts["reg_loss"] = reg.detach()
        return total, parts

    def train_step(self, step: int, counters: dict) -> StepResult:
        if step % self.steps_per_collection == 0 or self.rollouts is None:
            self._collect(step // self.steps_per_collection, counters)
        micro = self._minibatch_indices(step)
        rollouts = self.rollouts
        if self.config.whiten == "reference":
            rollouts = whiten_minibatch(rollouts, np.concatenate(micro), self.dist.device)
        batches = [collate_rollouts(rollouts, idx, self.setup.tokenizer.pad_token_id, self.config.max_prompt_length,
                                    self.dist.device) for idx in micro]
        corpus_batches, corpus_tokens = self.pretraining.batches(step) if self.pretraining else ([], 0.0)
        streams = len(self.prompts.streams)
        local = [sum(values) for values in zip(*(per_stream_sums(b["stream"], b["mask"].sum(1), streams)
                                                 for b in batches))]
        rl_tokens = all_reduce_sum(local, self.dist.device)
        if self.pretraining is not None:
            counters["ptx_tokens"] = counters.get("ptx_tokens", 0) + int(corpus_tokens)
        scale = self.dist.world_size * self.plan.accumulation
        stream_scale = torch.tensor([scale * w for w in ppo.token_weights(self.prompts.weights, rl_tokens,
                                                                          self.config.loss_reduction)],
                                    device=self.dist.device)
        sums: dict[str, float] = {}
        # Gradient accumulation: one backward per micro-batch; DeepSpeed applies the optimizer
        # update at the last engine.step() of the mini-batch.
        for k, batch in enumerate(batches):
            loss, parts = self._policy_terms(batch, stream_scale[batch["stream"]])
            if corpus_batches:
                corpus_loss, corpus_parts = self.pretraining.loss(self.engine, corpus_batches[k], corpus_tokens, scale)
                loss, parts = loss + corpus_loss, {**parts, **corpus_parts}
            self.setup.guard.backward(loss)
            self.engine.step()
            for name, value in parts.items():
                sums[name] = sums.get(name, 0.0) + float(value)
        names = sorted(sums)
        reduced = dict(zip(names, all_reduce_sum([sums[n] for n in names], self.dist.device)))
        # pg_loss / reg_loss arrive weighted and normalised (× scale); the other stats are token sums.
        weighted = {"pg_loss", "reg_loss"}
        stats = {n: t / (scale if n in weighted else max(corpus_tokens if n.startswith("pt_") else sum(rl_tokens), 1.0))
                 for n, t in reduced.items()}
        return StepResult({**self.collection_stats, **stats}, self._collection_items(step))

    def _collection_items(self, step: int) -> list[list[int]]:
        """(task stream, item) of the prompts behind this rank's rollouts of `step`'s collection."""
        return [list(self.prompt_pool[int(i)]) for i in self._prompt_share(step // self.steps_per_collection)]

    def _prompt_share(self, collection: int) -> np.ndarray:
        return prompt_share(self.prompt_sampler, collection, self.dist.rank, self.dist.world_size,
                            self.rollouts_per_rank, self.config.samples_per_prompt)

    def evaluate(self, generate: bool) -> dict[str, float]:
        """Sampled validation of the student alone (the evaluation protocol), its samples scored
        by the teacher; nothing after a non-finite step."""
        teacher = self.teacher if self.teacher_terms is None else None  # it cannot score the student's tokens
        return sampled_validation(self.setup, self.validation, teacher=teacher) if generate else {}



def prompt_share(sampler: GlobalBatchSampler, collection: int, rank: int, world_size: int, rollouts_per_rank: int,
                 samples_per_prompt: int) -> np.ndarray:
    """This rank's prompts (indices into the prompt pool) for its `rollouts_per_rank` rollouts of one
    collection: its share of the collection's prompts drawn by `sampler` (whose global batch is the
    collection's prompt count), each repeated `samples_per_prompt` times in a row, so that the
    samples of one prompt are drawn side by side (Tinker's groups of `group_size`)."""
    share = sampler.micro_batches(collection, rank, world_size, rollouts_per_rank // samples_per_prompt)[0]
    return np.repeat(share, samples_per_prompt)
