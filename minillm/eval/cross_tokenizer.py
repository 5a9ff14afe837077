"""Measures that do not depend on a tokenizer, so that students with different tokenizers compare
with each other and with their teacher: sampled continuations as bytes, and the negative
log-likelihood of a continuation per character of its text.

Every model reads the prompt as TEXT, encoded by its own tokenizer, and a continuation is scored
by encoding prompt + continuation as one text (minillm.data.cross_tokenizer.TextCodec): the
log-likelihood is the sum over the tokens that start inside the continuation (its canonical
tokenization, not the sum over every tokenization), and its characters are those that these
tokens cover, so a token that spans the prompt/continuation boundary is neither scored nor counted.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from minillm.data.cross_tokenizer import TextCodec
from minillm.data.datasets import collate_prompts
from minillm.eval.generation import SamplingConfig, sample


def _right_padded(sequences: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        input_ids[row, :len(sequence)] = torch.tensor(sequence)
        mask[row, :len(sequence)] = 1
    return {"input_ids": input_ids, "attention_mask": mask,
            "position_ids": torch.arange(width).expand(len(sequences), width).clone()}


@torch.no_grad()
def continuation_nll(model: torch.nn.Module, codec: TextCodec, prompts: Sequence[str], continuations: Sequence[bytes],
                     batch_size: int = 32) -> tuple[list[float], list[int]]:
    """Per row: −Σ log p (nats) of the continuation's tokens given the prompt, and the characters
    those tokens cover (see the module docstring). A row none of whose tokens start inside the
    continuation gives (0.0, 0)."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations")
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    nats, characters = [], []
    for start in range(0, len(prompts), batch_size):
        encoded = [codec.encode_continuation(prompt, continuation)
                   for prompt, continuation in zip(prompts[start:start + batch_size],
                                                   continuations[start:start + batch_size])]
        batch = _right_padded([ids for ids, _ in encoded], codec.tokenizer.pad_token_id)
        log_probs = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().log_softmax(-1)
        for row, ((ids, tokens), continuation) in enumerate(zip(encoded, continuations[start:start + batch_size])):
            positions = tokens.positions[tokens.positions >= 1]  # the first token of a text has no prediction
            if not len(positions):
                nats.append(0.0)
                characters.append(0)
                continue
            targets = torch.as_tensor(np.asarray(ids)[positions], device=device)
            nats.append(-float(log_probs[row, torch.as_tensor(positions - 1, device=device), targets].sum()))
            first = int(tokens.starts[len(tokens.starts) - len(positions)])
            end = int(tokens.starts[-1] + codec.lengths[ids[positions[-1]]])
            characters.append(len(continuation[first:end].decode("utf-8", errors="replace")))
    model.train(training)
    return nats, characters


@torch.no_grad()
def sample_continuations(model: torch.nn.Module, codec: TextCodec, prompts: Sequence[str], max_new_tokens: int,
                         seed: int, batch_size: int = 64) -> list[bytes]:
    """One continuation per prompt text (temperature 1, the evaluation sampler), as the bytes its
    tokens spell, up to its EOS."""
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    config = SamplingConfig(max_new_tokens=max_new_tokens)
    eos, pad = codec.tokenizer.eos_token_id, codec.tokenizer.pad_token_id
    training = model.training
    model.eval()
    out_bytes = []
    for start in range(0, len(prompts), batch_size):
        prompt_ids = [np.asarray(codec.tokenizer(text)["input_ids"], dtype=np.int64)
                      for text in prompts[start:start + batch_size]]
        batch = collate_prompts(prompt_ids, pad, max(len(p) for p in prompt_ids))
        out = sample(model, batch["input_ids"].to(device), batch["attention_mask"].to(device), config, eos, pad,
                     generator=generator)
        for tokens, length in zip(out.tokens.tolist(), out.lengths.tolist()):
            out_bytes.append(codec.response_bytes(tokens[:length])[0])
    model.train(training)
    return out_bytes
