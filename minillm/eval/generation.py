"""The batched KV-cache sampler shared by evaluation, validation, teacher-output generation and
MiniLLM's rollouts.

A hand-written loop instead of HF `generate` (8x slower for this workload, ref §9): one prefill
over the left-padded prompts, then one single-token forward per step, into a KV cache allocated
once for the prompt and every new token (`PreallocatedLayer`: a cache grown by concatenation
copies all of itself at every step). Rows that emit EOS are dropped from the batch and the KV
cache, so finished sequences stop costing compute. With teacher mixing (α > 0), both models step
together, the token is drawn from α·p_teacher + (1 − α)·q_student, and both models'
log-probabilities of the drawn token are recorded on the spot. Without mixing the teacher cannot
change a draw, so the student samples alone and `score_with_teacher` runs the teacher once over
the finished rows: the same log-probabilities up to float rounding, for one forward instead of one
per token. Either way no vocabulary-sized tensor is stored (unless MiniLLM asks to keep the
teacher's logits, `keep_teacher_logits`).

Opt-in (`SamplingConfig.decode`, unmeasured on a GPU): "static" keeps every row in a preallocated
cache so each step has the same shapes, and "compiled" also compiles that single-token step
(CUDA graphs on a GPU), where per-step launch overhead is what the eager loop loses (ref §9).
Both hand the drawing code the eager loop's sub-batch (same rows, same order), so the generator is
consumed identically and a seed gives the same tokens; only float rounding may differ (other
kernels for other shapes).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from transformers import DynamicCache, StaticCache
from transformers.cache_utils import DynamicLayer
from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

from minillm.modeling import position_ids_from_mask


DECODE_MODES = ("eager", "static", "compiled")
CACHE_LENGTH_MULTIPLE = 64  # static cache lengths are rounded up to this, so few shapes get compiled


@dataclass(frozen=True)
class SamplingConfig:
    """MiniLLM's evaluation protocol by default: pure ancestral sampling (ref §7)."""
    max_new_tokens: int = 256
    temperature: float = 1.0
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    no_repeat_ngram_size: int = 0  # 0 = off; MiniLLM's final evaluation used 6
    decode: str = "eager"  # one of DECODE_MODES: how the tokens are computed, never which ones

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.no_repeat_ngram_size < 0:
            raise ValueError("top_k and no_repeat_ngram_size must be ≥ 0")
        if self.decode not in DECODE_MODES:
            raise ValueError(f"decode must be one of {DECODE_MODES}, got {self.decode!r}")


@dataclass
class SampleOutput:
    tokens: torch.Tensor  # [B, T] generated tokens; EOS kept, pad after it
    lengths: torch.Tensor  # [B] generated tokens per row, EOS included
    # With record_logprobs: log q_student(y_t) and log p_teacher(y_t) of each drawn token at
    # temperature 1, [B, T] float32, 0 after a row's end.
    student_logprobs: torch.Tensor | None = None
    teacher_logprobs: torch.Tensor | None = None
    # With record_entropy: the entropy (nats) of the student's own next-token distribution (its raw
    # logits, temperature 1, no filtering) at each generated position, [B, T] float32, 0 after a row's end.
    entropy: torch.Tensor | None = None


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of softmax(logits) over the last dimension: [..., V] -> [...]. Masked
    logits (-inf) count as probability 0."""
    log_probs = logits.float().log_softmax(-1)
    return -(log_probs.exp() * log_probs.nan_to_num(neginf=0.0)).sum(-1)


def warp_logits(logits: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Temperature, then top-k, then top-p (nucleus) filtering. logits: [B, V] fp32."""
    if config.temperature != 1.0:
        logits = logits / config.temperature
    if config.top_k > 0:
        kth = torch.topk(logits, min(config.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        # Drop a token when the mass BEFORE it already reaches top_p (the top token always stays).
        drop_sorted = (cumulative - sorted_logits.softmax(-1)) >= config.top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return logits


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers [B, H, capacity, D] allocated at the first update:
    each step writes its slot and attends to a view of the filled prefix, where `DynamicLayer`
    concatenates (copies the whole cache) at every step. The views hold the same values in the same
    shapes, so attention computes what it computes over the concatenated cache."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.key_buffer = key_states.new_empty(*key_states.shape[:2], self.capacity, key_states.shape[3])
        self.value_buffer = value_states.new_empty(*value_states.shape[:2], self.capacity, value_states.shape[3])
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args,
               **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if end > self.capacity:
            raise RuntimeError(f"KV cache full: {end} positions for a capacity of {self.capacity}")
        self.key_buffer[:, :, self.length:end] = key_states
        self.value_buffer[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self.key_buffer[:, :, :end], self.value_buffer[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self.key_buffer, self.value_buffer = self.key_buffer[indices], self.value_buffer[indices]
            self.keys, self.values = self.key_buffer[:, :, :self.length], self.value_buffer[:, :, :self.length]


def preallocated_cache(model: torch.nn.Module, capacity: int) -> DynamicCache:
    """A DynamicCache for `model` whose layers are `PreallocatedLayer`s of `capacity` positions;
    layers of another kind (sliding-window, linear attention) stay as the model's config makes them."""
    cache = DynamicCache(config=model.config)
    cache.layers = [PreallocatedLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


class KVStepper:
    """One causal LM advanced token by token with its KV cache, over a shrinking set of rows. The
    cache and the attention mask are allocated once for the prompt and `max_new_tokens`."""

    def __init__(self, model: torch.nn.Module, max_new_tokens: int):
        self.model, self.max_new_tokens = model, max_new_tokens
        self.cache = None
        self.mask_buffer: torch.Tensor | None = None  # [B, P + max_new_tokens]: the prompt's mask, then ones
        self.length = 0  # positions filled so far
        self.next_position: torch.Tensor | None = None

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Run the left-padded prompts [B, P]; return the next-token logits [B, V]."""
        batch, prompt = input_ids.shape
        positions = position_ids_from_mask(attention_mask)
        self.cache = preallocated_cache(self.model, prompt + self.max_new_tokens)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                         past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.cache = out.past_key_values
        self.mask_buffer = torch.cat([attention_mask, attention_mask.new_ones(batch, self.max_new_tokens)], 1)
        self.length = prompt
        self.next_position = positions[:, -1:] + 1
        return out.logits[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row [B]; return the next-token logits [B, V]."""
        self.length += 1
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask_buffer[:, :self.length],
                         position_ids=self.next_position, past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        self.next_position = self.next_position + 1
        return out.logits[:, -1]

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)
        self.mask_buffer = self.mask_buffer[rows]
        self.next_position = self.next_position[rows]


class StaticKVStepper:
    """KVStepper's interface over a preallocated cache: finished rows stay in the batch, fed any
    token, and only the kept rows' logits are returned, so every step has the same shapes and the
    sampler sees exactly the sub-batch the eager stepper would give it."""

    def __init__(self, model: torch.nn.Module, max_new_tokens: int, compiled: bool):
        self.model, self.max_new_tokens = model, max_new_tokens
        self.forward = _compiled_decode_step(next(model.parameters()).device.type) if compiled else _decode_step

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, prompt = input_ids.shape
        length = -(-(prompt + self.max_new_tokens) // CACHE_LENGTH_MULTIPLE) * CACHE_LENGTH_MULTIPLE
        self.cache = StaticCache(config=self.model.config, max_cache_len=length)
        # The whole mask up front: the causal mask already hides the slots not written yet.
        self.attention_mask = torch.cat([attention_mask, attention_mask.new_ones(batch, length - prompt)], 1)
        positions = position_ids_from_mask(attention_mask)
        out = self.model(input_ids=input_ids, attention_mask=self.attention_mask, position_ids=positions,
                         past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        self.next_position = positions[:, -1:] + 1
        self.rows = torch.arange(batch, device=input_ids.device)
        self.tokens = input_ids[:, -1].clone()
        return out.logits[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.tokens[self.rows] = tokens
        logits = self.forward(self.model, self.tokens[:, None], self.attention_mask, self.next_position, self.cache)
        self.next_position = self.next_position + 1
        return logits[self.rows]

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.rows = self.rows[rows]


def _decode_step(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 position_ids: torch.Tensor, cache: StaticCache) -> torch.Tensor:
    # forward, not __call__: a DeepSpeed engine hooks the model it wraps with timers that
    # torch.compile cannot trace (time.time), and they only keep its books.
    return model.forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                 past_key_values=cache, use_cache=True).logits[:, -1]


@functools.cache
def _compiled_decode_step(device_type: str) -> Callable:
    # One compiled function per process: a fresh torch.compile per call would compile again.
    return torch.compile(_decode_step, fullgraph=True, mode="reduce-overhead" if device_type == "cuda" else None)


# keep_teacher_logits(rows [b], steps, logits [b, n, V_t]): the teacher's raw next-token logits at
# response positions `steps` (a slice of n positions) of the rows `rows` (indices into the batch).
KeepTeacherLogits = Callable[[torch.Tensor, slice, torch.Tensor], None]


def output_width(model: torch.nn.Module) -> int:
    """Columns of the model's logits (its output embedding's rows; read without touching weights
    that ZeRO-3 may have partitioned)."""
    head = model.get_output_embeddings()
    return getattr(head, "out_features", None) or model.config.vocab_size


@torch.no_grad()
def sample(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
           config: SamplingConfig, eos_token_id: int, pad_token_id: int,
           generator: torch.Generator | None = None, sync_ranks: bool = False,
           teacher: torch.nn.Module | None = None, teacher_mix: float = 0.0,
           record_logprobs: bool = False, record_entropy: bool = False,
           keep_teacher_logits: KeepTeacherLogits | None = None) -> SampleOutput:
    """Sample continuations of left-padded prompts (input_ids, attention_mask: [B, P]).

    teacher / teacher_mix: draw each token from teacher_mix·p + (1 − teacher_mix)·q, where q is
    the student's distribution after `config`'s filtering (MiniLLM's teacher-mixed sampling;
    the teacher must share the tokenizer; vocabularies are compared over the shared columns, and
    the student draws from those columns whenever a teacher is given).
    record_logprobs: return both models' log-probabilities of the drawn tokens (the teacher's
    only when one is given).
    record_entropy: return the entropy of the student's own distribution at every drawn token
    (`token_entropy` of its raw logits: how sharp the model is where it sampled).
    keep_teacher_logits: receives the teacher's raw next-token logits at every response position
    of every row (`KeepTeacherLogits`), so MiniLLM can reuse them instead of running the teacher
    again. With teacher_mix > 0 they come step by step from the mixing teacher; with
    teacher_mix = 0 the teacher never steps: `score_with_teacher` runs it once over the finished
    rows and hands them over in one block.
    sync_ranks: under ZeRO-3 every rank must run the same number of forwards, so ranks agree
    on when to stop and keep finished rows in the batch instead of dropping them.
    """
    device = input_ids.device
    batch, steps = input_ids.shape[0], config.max_new_tokens
    mixing = teacher is not None and teacher_mix > 0
    tokens = torch.full((batch, steps), pad_token_id, dtype=torch.long, device=device)
    lengths = torch.full((batch,), steps, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    rows = torch.arange(batch, device=device)  # original row index of each row still in the cache
    stepping = {"student": model, **({"teacher": teacher} if mixing else {})}
    recorded = {name: torch.zeros((batch, steps), device=device) for name in stepping} if record_logprobs else {}
    entropy = torch.zeros((batch, steps), device=device) if record_entropy else None
    no_repeat = (NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size)
                 if config.no_repeat_ngram_size > 0 else None)
    history = input_ids

    steppers = [KVStepper(net, steps) if config.decode == "eager" else
                StaticKVStepper(net, steps, compiled=config.decode == "compiled") for net in stepping.values()]
    logits = [stepper.prefill(input_ids, attention_mask) for stepper in steppers]
    vocab = min([step_logits.shape[-1] for step_logits in logits] + ([output_width(teacher)] if teacher else []))
    for t in range(steps):
        if keep_teacher_logits is not None and mixing:
            keep_teacher_logits(rows, slice(t, t + 1), logits[1][:, None])
        step_logits = dict(zip(stepping, (x[:, :vocab].float() for x in logits)))
        scores = step_logits["student"]
        if no_repeat is not None:  # blocking first, as HF does, so top-k picks among allowed tokens
            scores = no_repeat(history, scores)
        probs = warp_logits(scores, config).softmax(-1)
        if mixing:
            probs = teacher_mix * step_logits["teacher"].softmax(-1) + (1.0 - teacher_mix) * probs
        if not bool(torch.isfinite(probs).all()):  # torch's own message never says why
            raise FloatingPointError(f"sampling, new token {t + 1}: the next-token probabilities are NaN or infinite "
                                     f"because the model's logits are: its weights have diverged (or hold NaN)")
        drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        drawn = torch.where(finished[rows], pad_token_id, drawn)
        tokens[rows, t] = drawn
        live = ~finished[rows]
        for name, store in recorded.items():
            picked = step_logits[name].log_softmax(-1).gather(1, drawn[:, None]).squeeze(1)
            store[rows, t] = torch.where(live, picked, 0.0)
        if entropy is not None:
            entropy[rows, t] = torch.where(live, token_entropy(step_logits["student"]), 0.0)
        just_done = (drawn == eos_token_id) & live
        lengths[rows[just_done]] = t + 1
        finished[rows[just_done]] = True
        if _all_finished(finished, sync_ranks) or t + 1 == steps:
            break
        if no_repeat is not None:
            history = torch.cat([history, drawn[:, None]], 1)
        if not sync_ranks and just_done.any():
            keep = (~just_done).nonzero().squeeze(1)
            for stepper in steppers:
                stepper.keep_rows(keep)
            rows, drawn = rows[keep], drawn[keep]
            if no_repeat is not None:
                history = history[keep]
        logits = [stepper.step(drawn) for stepper in steppers]
    if teacher is not None and not mixing and (record_logprobs or keep_teacher_logits is not None):
        teacher_logprobs = score_with_teacher(teacher, input_ids, attention_mask, tokens, lengths, vocab,
                                              keep_teacher_logits)
        if record_logprobs:
            recorded["teacher"] = teacher_logprobs
    return SampleOutput(tokens, lengths, recorded.get("student"), recorded.get("teacher"), entropy)


# Rows × response positions × vocabulary of teacher logits per forward of `score_with_teacher`
# (2^28 fp32 values: 1 GiB), so scoring a large batch never holds all its logits at once.
SCORING_LOGITS_PER_PASS = 2 ** 28


@torch.no_grad()
def score_with_teacher(teacher: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       tokens: torch.Tensor, lengths: torch.Tensor, vocab_size: int,
                       keep_teacher_logits: KeepTeacherLogits | None = None) -> torch.Tensor:
    """The teacher's log-probabilities of finished samples: one forward over [prompt | response].

    input_ids, attention_mask [B, P]: the left-padded prompts as sampled; tokens [B, T]: the
    responses (`SampleOutput.tokens`), lengths [B] (EOS included) → log p(y_t) [B, T] float32 over
    the first `vocab_size` columns, 0 after each row's end. The output projection runs at the
    response positions only. `keep_teacher_logits` (see `sample`) gets the raw logits of each pass.
    The one place a finished rollout meets its teacher: another scorer (a teacher with another
    tokenizer, several samples per prompt) replaces this function.
    """
    batch, prompt = input_ids.shape
    width = max(int(lengths.max()), 1)
    response = tokens[:, :width]
    response_mask = torch.arange(width, device=tokens.device)[None, :] < lengths[:, None]
    sequence = torch.cat([input_ids, response], 1)
    mask = torch.cat([attention_mask, response_mask.to(attention_mask.dtype)], 1)
    scored = torch.arange(prompt - 1, prompt - 1 + width, device=tokens.device)  # positions predicting the response
    logprobs = torch.zeros(tokens.shape, device=tokens.device)
    rows_per_pass = max(1, SCORING_LOGITS_PER_PASS // (width * vocab_size))
    for first in range(0, batch, rows_per_pass):
        part = slice(first, first + rows_per_pass)
        logits = teacher(input_ids=sequence[part], attention_mask=mask[part],
                         position_ids=position_ids_from_mask(mask[part]), logits_to_keep=scored).logits
        if keep_teacher_logits is not None:
            keep_teacher_logits(torch.arange(first, first + len(logits), device=tokens.device), slice(0, width), logits)
        picked = logits[..., :vocab_size].float().log_softmax(-1).gather(2, response[part, :, None]).squeeze(2)
        logprobs[part, :width] = torch.where(response_mask[part], picked, 0.0)
    return logprobs


def _all_finished(finished: torch.Tensor, sync_ranks: bool) -> bool:
    pending = (~finished).sum()
    if sync_ranks and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(pending)
    return int(pending) == 0
