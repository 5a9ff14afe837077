"""The shared data loader: round trip, SFT label masks, prompt padding, rank-aware sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from minillm.data.datasets import (Example, GlobalBatchSampler, TokenDataset, collate_prompts, collate_sft,
                                   shard_for_rank)
from minillm.data.templates import build_prompt
from minillm.losses import IGNORE_INDEX
from world import MAX_LENGTH


def test_round_trip_matches_the_raw_rows(world):
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer)
    valid = TokenDataset(world.processed, "valid", MAX_LENGTH)
    rows = [json.loads(line) for line in open(world.processed / "valid.jsonl")]
    assert len(valid) == len(rows) == 40
    for index in (0, 7, 39):
        row = rows[index]
        prompt = build_prompt(row["instruction"], row["input"])
        expected_prompt = tokenizer.encode(prompt, add_special_tokens=False)
        full = tokenizer.encode(prompt + row["output"], add_special_tokens=False) + [tokenizer.eos_token_id]
        example = valid.example(index)
        assert example.prompt_len == len(expected_prompt)
        assert example.tokens.tolist() == full[:MAX_LENGTH]
        assert valid.prompt(index).tolist() == expected_prompt
    assert valid.references() == [row["output"] for row in rows]


def test_sft_labels_supervise_only_the_response_and_eos():
    pad = 0
    examples = [Example(np.array([5, 6, 7, 8, 9, 1]), prompt_len=3), Example(np.array([5, 6, 3, 1]), prompt_len=2)]
    batch = collate_sft(examples, pad_id=pad)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 6, 3, pad, pad]]
    # labels[t] predicts tokens[t + 1]; the first prompt_len - 1 are context.
    assert batch["labels"].tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 8, 9, 1], [IGNORE_INDEX, 3, 1, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 3, 4]


def test_items_are_truncated_to_max_length(world):
    short = TokenDataset(world.processed, "train", max_length=20)
    assert max(len(short.example(i).tokens) for i in range(len(short))) == 20


def test_prompts_are_left_padded_and_keep_their_last_tokens():
    batch = collate_prompts([np.array([4, 5]), np.array([1, 2, 3, 4, 5, 6])], pad_id=0, max_prompt_length=4)
    assert batch["input_ids"].tolist() == [[0, 0, 4, 5], [3, 4, 5, 6]]
    assert batch["attention_mask"].tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]


@pytest.mark.parametrize("world_size,micro", [(1, 8), (1, 3), (2, 4), (4, 1)])
def test_global_batches_do_not_depend_on_the_number_of_ranks(world_size, micro):
    sampler = GlobalBatchSampler(num_items=50, global_batch=8, seed=3)
    assert sampler.steps_per_epoch == 6
    for step in (0, 5, 6, 13):
        parts = [mb for rank in range(world_size)
                 for mb in sampler.micro_batches(step, rank, world_size, micro)]
        assert np.concatenate(parts).tolist() == sampler.global_indices(step).tolist()
    epoch0 = np.concatenate([sampler.global_indices(s) for s in range(6)])
    assert len(set(epoch0.tolist())) == 48  # no repeats within an epoch
    assert sampler.global_indices(6).tolist() != sampler.global_indices(0).tolist()  # reshuffled


def test_too_small_a_dataset_is_refused():
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        GlobalBatchSampler(num_items=5, global_batch=8, seed=0)


def test_shards_cover_every_item_once_and_have_equal_length():
    shards = [shard_for_rank(10, rank, 4) for rank in range(4)]
    assert {len(indices) for indices, _ in shards} == {3}
    real = sorted(i for indices, mask in shards for i, m in zip(indices, mask) if m)
    assert real == list(range(10))
