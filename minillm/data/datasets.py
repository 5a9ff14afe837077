"""Batches built from the indexed format (ref §2), and the rank-aware global-batch sampler.

An item of a "full" file is `prompt + [split_id] + response`; an item without the split id is
treated as all-response (pretraining chunks). All batches are plain dicts of CPU tensors.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from minillm.data.indexed import IndexedDataset
from minillm.losses import IGNORE_INDEX


@dataclass(frozen=True)
class Example:
    """One tokenised item: `prompt_len` leading tokens are context, the rest is supervised."""
    tokens: np.ndarray
    prompt_len: int
    # From a teacher cache (minillm.data.teacher_cache): (ids [n, k], log_probs [n, k + 1]) at the n
    # supervised positions, in order; None without a cache.
    teacher: tuple[np.ndarray, np.ndarray] | None = None


class TokenDataset:
    """`{data_dir}/{split}_0.bin/.idx` read by memory map, items split at the separator.

    A folder written for one task of step-by-step distillation also holds `task.json`
    ({"task", "prefix", "target_field"}): its prompts start with that task prefix.
    """

    def __init__(self, data_dir: str | Path, split: str, max_length: int):
        self.data_dir = Path(data_dir)
        self.split = split
        self.max_length = max_length
        self.indexed = IndexedDataset(str(self.data_dir / f"{split}_0"))
        task_file = self.data_dir / "task.json"
        self.task = json.loads(task_file.read_text()) if task_file.is_file() else {"task": "default", "prefix": ""}
        self._rows: list[dict] | None = None

    def __len__(self) -> int:
        return len(self.indexed)

    def check_token_ids(self, vocab_size: int) -> None:
        """Every id must index the model's vocabulary (or be the split id): a corrupt file or one
        made with a larger tokenizer would otherwise fail mid-training with a bare IndexError."""
        found = self.indexed.first_invalid_token(vocab_size)
        if found is not None:
            item, value = found
            raise ValueError(f"{self.indexed.prefix}.bin: item {item} holds token id {value}, outside the "
                             f"vocabulary of {vocab_size} tokens (and not the split id {self.indexed.split_id}); "
                             f"the file is corrupt or was made with another tokenizer: reprocess it")

    def example(self, index: int) -> Example:
        ids = self.indexed[index]
        where = np.flatnonzero(ids == self.indexed.split_id)
        if len(where):
            cut = int(where[0])
            ids = np.concatenate([ids[:cut], ids[cut + 1:]])
        else:
            cut = 0  # no prompt: every token after the first is supervised
        return Example(ids[: self.max_length].astype(np.int64), cut)

    def prompt(self, index: int) -> np.ndarray:
        """The prompt tokens of a full item (or the whole item of a prompt-only file)."""
        ids = self.indexed[index]
        where = np.flatnonzero(ids == self.indexed.split_id)
        return (ids[: int(where[0])] if len(where) else ids).astype(np.int64)

    def rows(self) -> list[dict]:
        """The `{split}.jsonl` rows written beside the binary files, one per item (read once:
        every validation asks for references and answers)."""
        if self._rows is None:
            path = self.data_dir / f"{self.split}.jsonl"
            with open(path) as handle:
                rows = [json.loads(line) for line in handle if line.strip()]
            if len(rows) != len(self):
                raise ValueError(f"{path} has {len(rows)} rows but {self.data_dir}/{self.split}_0.bin "
                                 f"has {len(self)} items; reprocess the data")
            self._rows = rows
        return self._rows

    def references(self) -> list:
        """Gold responses (the `output` field of the rows)."""
        return [row["output"] for row in self.rows()]

    def answers(self) -> list[str]:
        """Short gold answers for accuracy ("" where a row has none)."""
        return [row.get("answer", "") for row in self.rows()]

    def source_rows(self) -> list[int]:
        """Each item's line in the raw split it was processed from: how task streams pair up."""
        rows = self.rows()
        if any("row" not in row for row in rows):
            raise ValueError(f"{self.data_dir}/{self.split}.jsonl has no 'row' field; reprocess it with "
                             f"tools/process_data_dolly.py to train several task streams")
        return [row["row"] for row in rows]


@dataclass(frozen=True)
class TaskStream:
    """One task of multi-task training: its data, and its weight in the loss."""
    name: str
    dataset: TokenDataset
    weight: float


class PairedStreams:
    """Multi-task items: item i is row i of the first (primary) stream's data together with the
    same source row in every other stream that has it (a question without a rationale has no
    rationale task). Epochs run over the primary stream, optionally a fixed subset of it.

    `examples(i)` → [(stream index, Example)]: both tasks of a question land in the same batch.
    """

    def __init__(self, streams: Sequence[TaskStream], subset: np.ndarray | None = None):
        self.streams = list(streams)
        primary_rows = self.streams[0].dataset.source_rows() if len(self.streams) > 1 else []
        self.partners: list[np.ndarray] = []
        for stream in self.streams[1:]:
            where = {row: k for k, row in enumerate(stream.dataset.source_rows())}
            self.partners.append(np.array([where.get(row, -1) for row in primary_rows], dtype=np.int64))
        self.items = np.arange(len(self.streams[0].dataset)) if subset is None else np.asarray(subset)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def names(self) -> list[str]:
        return [stream.name for stream in self.streams]

    @property
    def weights(self) -> list[float]:
        return [stream.weight for stream in self.streams]

    def pooled(self) -> list[tuple[int, int]]:
        """Every (stream index, dataset index) of the chosen items, each task separately: the
        prompts of on-policy training, which samples tasks independently."""
        pool = [(0, int(item)) for item in self.items]
        for k, partners in enumerate(self.partners, start=1):
            pool += [(k, int(partners[item])) for item in self.items if partners[item] >= 0]
        return pool

    def token_ratio(self) -> float:
        """Tokens of every stream's examples over the chosen items ÷ those of the primary stream's
        (what one epoch trains on with the partner tasks, relative to the primary task alone)."""
        primary = sum(len(self.streams[0].dataset.example(int(item)).tokens) for item in self.items)
        every = sum(len(example.tokens) for index in range(len(self)) for _, example in self.examples(index))
        return every / primary

    def examples(self, index: int) -> list[tuple[int, Example]]:
        item = int(self.items[index])
        found = [(0, self.streams[0].dataset.example(item))]
        for k, partners in enumerate(self.partners, start=1):
            if partners[item] >= 0:
                found.append((k, self.streams[k].dataset.example(int(partners[item]))))
        return found


def fraction_subset(num_items: int, fraction: float) -> np.ndarray:
    """A fixed random `fraction` of the items (at least one) for the data-efficiency curves of
    step-by-step distillation. It depends on nothing else (not the training seed), so every method
    and seed sees the same items, and smaller fractions are subsets of larger ones."""
    if not 0 < fraction <= 1:
        raise ValueError(f"the training-data fraction must be in (0, 1], got {fraction}")
    keep = max(1, round(fraction * num_items))
    return np.sort(np.random.default_rng(7919).permutation(num_items)[:keep])


def collate_sft(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded causal-LM batch; labels only on response tokens (including the final EOS).

    input_ids = tokens[:-1], labels = tokens[1:] with the first `prompt_len - 1` ignored.
    Returns input_ids, attention_mask, position_ids, labels: each [B, T]; examples from a teacher
    cache add teacher_ids [B, T, k] and teacher_log_probs [B, T, k + 1] (zeros off the labels).
    """
    width = max(len(ex.tokens) - 1 for ex in examples)
    batch = len(examples)
    input_ids = torch.full((batch, width), pad_id, dtype=torch.long)
    labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)
    for row, ex in enumerate(examples):
        tokens = torch.from_numpy(ex.tokens)
        length = len(tokens) - 1
        input_ids[row, :length] = tokens[:-1]
        labels[row, :length] = tokens[1:]
        labels[row, : max(ex.prompt_len - 1, 0)] = IGNORE_INDEX
        attention_mask[row, :length] = 1
    position_ids = torch.arange(width).expand(batch, width).clone()
    collated = {"input_ids": input_ids, "attention_mask": attention_mask,
                "position_ids": position_ids, "labels": labels}
    if examples[0].teacher is not None:
        collated.update(_collate_teacher_records(examples, labels))
    return collated


def _collate_teacher_records(examples: Sequence[Example], labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each example's cached records placed at its supervised positions: row-major order over the
    labels is the examples' records one after the other, so one assignment places them all."""
    supervised = labels != IGNORE_INDEX
    counts = supervised.sum(1).tolist()
    held = [len(example.teacher[0]) for example in examples]
    if counts != held:
        raise ValueError(f"teacher cache items hold {held} positions but the examples have {counts} supervised "
                         f"tokens: the cache belongs to other data or another max_length")
    k = examples[0].teacher[0].shape[1]
    ids = torch.zeros((*labels.shape, k), dtype=torch.long)
    log_probs = torch.zeros((*labels.shape, k + 1), dtype=torch.float32)
    ids[supervised] = torch.from_numpy(np.concatenate([example.teacher[0] for example in examples]).astype(np.int64))
    log_probs[supervised] = torch.from_numpy(np.concatenate([example.teacher[1] for example in examples]))
    return {"teacher_ids": ids, "teacher_log_probs": log_probs}


def collate_prompts(prompts: Sequence[np.ndarray], pad_id: int, max_prompt_length: int) -> dict[str, torch.Tensor]:
    """Left-padded prompts for generation; longer prompts keep their LAST tokens (the
    "### Response:" cue must survive). Returns input_ids and attention_mask, each [B, P]."""
    prompts = [np.asarray(p, dtype=np.int64)[-max_prompt_length:] for p in prompts]
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if len(prompt):
            input_ids[row, -len(prompt):] = torch.from_numpy(prompt)
            attention_mask[row, -len(prompt):] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}


class GlobalBatchSampler:
    """Deterministic global batches: step s uses the same items whatever the world size.

    Epoch e is a permutation seeded by (seed, e); step s takes the s-th block of `global_batch`
    items (the incomplete tail is dropped). Rank r takes its contiguous share of the block and
    splits it into `accumulation` micro-batches. Resuming at step s needs no sampler state.
    """

    def __init__(self, num_items: int, global_batch: int, seed: int):
        if num_items < global_batch:
            raise ValueError(f"{num_items} training items cannot fill one global batch of {global_batch}: lower "
                             f"the batch size, or find why the data has so few (its data_manifest.json names the "
                             f"file it was processed from and the items per split)")
        self.num_items = num_items
        self.global_batch = global_batch
        self.seed = seed
        self.steps_per_epoch = num_items // global_batch
        self._cached_epoch: tuple[int, np.ndarray] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self._cached_epoch is None or self._cached_epoch[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._cached_epoch = (epoch, rng.permutation(self.num_items))
        return self._cached_epoch[1]

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def global_indices(self, step: int) -> np.ndarray:
        block = step % self.steps_per_epoch
        return self._permutation(self.epoch_of(step))[block * self.global_batch:(block + 1) * self.global_batch]

    def micro_batches(self, step: int, rank: int, world_size: int, micro_batch: int) -> list[np.ndarray]:
        per_rank = self.global_batch // world_size
        mine = self.global_indices(step)[rank * per_rank:(rank + 1) * per_rank]
        return [mine[i:i + micro_batch] for i in range(0, per_rank, micro_batch)]


def shard_for_rank(num_items: int, rank: int, world_size: int) -> tuple[list[int], list[bool]]:
    """Strided shard padded to the same length on every rank (ZeRO-3 needs every rank to run
    the same number of forwards). The mask marks real items; padding repeats item 0."""
    per_rank = -(-num_items // world_size)
    indices, real = [], []
    for k in range(per_rank):
        index = rank + k * world_size
        indices.append(index if index < num_items else 0)
        real.append(index < num_items)
    return indices, real
