"""Generation + scoring shared by in-training validation and `evaluate.py` (ref §7).

Prompts are sharded over ranks, sorted by length and batched by a TOKEN budget (rows × (prompt
+ new tokens)), so batches stay full whatever the prompt lengths; outputs return in input order.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist

from minillm.data.datasets import collate_prompts, collate_sft, shard_for_rank
from minillm.data.processing import DataFormatError, read_jsonl
from minillm.data.templates import build_prompt
from minillm.distributed import DistInfo
from minillm.eval.generation import SamplingConfig, sample
from minillm.log import RunLogger
from minillm.losses import IGNORE_INDEX, divergence
from minillm.metrics import (
    answer_accuracies,
    answer_accuracy,
    answer_diversity,
    answer_validity,
    compute_metrics,
    fact_scores,
)
from minillm.statistics import mean_and_std

# MiniLLM keeps S-NI and UnNI under a references-length subfolder.
EVAL_SET_DIRS = {"sinst": "sinst/11_", "uinst": "uinst/11_"}
DEFAULT_EVAL_SETS = ("dolly", "self-inst", "vicuna", "sinst", "uinst")


@dataclass
class EvalSet:
    name: str
    path: Path
    rows: list[dict]
    prompts: list[str]
    references: list  # str or list[str] per row

    @property
    def answers(self) -> list[str]:
        """Short gold answers for accuracy ("" for open-ended rows)."""
        return [row.get("answer", "") for row in self.rows]

    @property
    def families(self) -> list[str | None]:
        """Each row's task family (its `category`), None when the row has none."""
        return [row.get("category") for row in self.rows]

    @property
    def label_references(self) -> list | None:
        """The step-by-step label task's reference per row (`label_output`, else the row's
        `output`), or None when no row has a `label_output`."""
        if not any("label_output" in row for row in self.rows):
            return None
        return [row.get("label_output", row["output"]) for row in self.rows]

    @property
    def fact_checks(self) -> list[dict | None] | None:
        """Each row's fact check (`facts`, minillm.metrics.fact_scores), None for a row without
        one; None when no row has one."""
        if not any("facts" in row for row in self.rows):
            return None
        return [row.get("facts") for row in self.rows]


def score_generations(texts: list[str], references: list, answers: Sequence[str] = ()) -> dict[str, float]:
    """Rouge-L and exact match against the references; with any non-empty answer also
    "accuracy" (flexible: the answer's value or normalised text, over the rows that have an
    answer), for in-training validation on samples; evaluate.py reports `summarize_set`."""
    metrics = compute_metrics(texts, references)
    if any(answer.strip() for answer in answers):
        metrics["accuracy"] = answer_accuracy(texts, list(answers))
    return metrics


# Greedy decoding in the sampler's terms: top-k 1 leaves one token to draw (exact ties aside).
GREEDY_TOP_K = 1
ACCURACY_DECODINGS = ("greedy", "sampled")


def seeded_statistics(metric: str, per_seed: Sequence[float]) -> dict:
    """{metric_per_seed, metric_mean, metric_std}: the values and their mean ± sample std (4 places)."""
    mean, std = mean_and_std(per_seed)
    return {f"{metric}_per_seed": list(per_seed), f"{metric}_mean": round(mean, 4), f"{metric}_std": round(std, 4)}


@dataclass(frozen=True)
class _SetTexts:
    """What summarize_set scores: per row the references, answers and optional label references
    and fact checks; per seed and row the sampled texts (and optionally their summed token
    entropies and lengths); per row the greedy texts, or None."""
    references: list
    answers: Sequence[str]
    sampled: list[list[str]]
    greedy: list[str] | None
    label_references: list | None
    fact_checks: Sequence[dict | None] | None
    entropies: list[list[float]] | None
    lengths: list[list[int]] | None


def _decoding_metrics(texts: list[str], rows: list[int], scored: _SetTexts) -> dict[str, float]:
    """The text metrics of one decoding (`texts`, every row) on the rows `rows`: Rouge-L and exact
    match against the references and, when given, against the label references; fact precision,
    recall and F1 over the rows with a fact check; validity over the multi-answer rows."""
    def pick(values: Sequence) -> list:
        return [values[i] for i in rows]

    metrics = compute_metrics(pick(texts), pick(scored.references))
    if scored.label_references is not None:
        metrics |= {f"{name}_label": value
                    for name, value in compute_metrics(pick(texts), pick(scored.label_references)).items()}
    checked = [i for i in rows if scored.fact_checks is not None and scored.fact_checks[i] is not None]
    if checked:
        metrics |= fact_scores([texts[i] for i in checked], [scored.fact_checks[i] for i in checked])
    multi_answer = [i for i in rows if isinstance(scored.references[i], list)]
    if multi_answer:
        metrics["validity"] = answer_validity([[texts[i] for i in multi_answer]],
                                              [scored.references[i] for i in multi_answer])["validity"]
    return metrics


def _subset_results(rows: list[int], scored: _SetTexts) -> dict:
    """The results of the rows `rows` (indices): each text metric (`_decoding_metrics`) per
    generation seed and, with greedy texts, from them (`<metric>_greedy`); with entropies, the
    mean per-token entropy per seed; with answers, strict and flexible accuracy (of the greedy
    texts, or per seed when there are none); with list references, diversity over the seeds."""
    per_seed = [_decoding_metrics(texts, rows, scored) for texts in scored.sampled]
    entry = {"rows": len(rows)}
    checked = [i for i in rows if scored.fact_checks is not None and scored.fact_checks[i] is not None]
    if checked:
        entry["fact_rows"] = len(checked)
    for metric in per_seed[0]:
        entry |= seeded_statistics(metric, [metrics[metric] for metrics in per_seed])
    if scored.greedy is not None:
        entry |= {f"{metric}_greedy": value for metric, value in _decoding_metrics(scored.greedy, rows, scored).items()}
    if scored.entropies is not None:
        entry |= seeded_statistics("entropy", [mean_token_entropy([entropies[i] for i in rows], [lengths[i] for i in rows])
                                               for entropies, lengths in zip(scored.entropies, scored.lengths)])
    answered = [i for i in rows if scored.answers[i].strip()]
    if answered:
        entry["answer_rows"] = len(answered)
        gold = [scored.answers[i] for i in answered]
        if scored.greedy is not None:
            entry |= answer_accuracies([scored.greedy[i] for i in answered], gold)
        else:
            per_seed_accuracy = [answer_accuracies([texts[i] for i in answered], gold) for texts in scored.sampled]
            for metric in per_seed_accuracy[0]:
                statistics = seeded_statistics(metric, [accuracies[metric] for accuracies in per_seed_accuracy])
                entry |= statistics | {metric: statistics[f"{metric}_mean"]}
    multi_answer = [i for i in rows if isinstance(scored.references[i], list)]
    if multi_answer:
        entry["multi_answer_rows"] = len(multi_answer)
        seeds_texts = [[texts[i] for i in multi_answer] for texts in scored.sampled]
        golds = [scored.references[i] for i in multi_answer]
        entry |= answer_diversity(seeds_texts, golds)
        entry["distinct_valid_per_prompt"] = answer_validity(seeds_texts, golds)["distinct_valid_per_prompt"]
    return entry


def mean_token_entropy(entropy_sums: Sequence[float], lengths: Sequence[int]) -> float:
    """Mean entropy per generated token (nats, 4 places) of responses given their summed token
    entropies and lengths: every token weighs the same, so long responses count more."""
    if len(entropy_sums) != len(lengths):
        raise ValueError(f"{len(entropy_sums)} entropy sums but {len(lengths)} lengths")
    tokens = sum(lengths)
    if tokens <= 0:
        raise ValueError("no generated tokens to average the entropy over")
    return round(sum(entropy_sums) / tokens, 4)


def summarize_set(references: list, answers: Sequence[str], families: Sequence[str | None],
                  sampled: list[list[str]], greedy: list[str] | None, *, label_references: list | None = None,
                  fact_checks: Sequence[dict | None] | None = None, entropies: list[list[float]] | None = None,
                  lengths: list[list[int]] | None = None) -> dict:
    """One eval set's summary.json entry (keys in evaluate.py's docstring) from the sampled
    texts (`sampled[seed][row]`) and the greedy ones (None: none were decoded; accuracy then comes
    from the samples, per seed). Optional, per row: `label_references` (the step-by-step label
    task's references), `fact_checks` (None for rows without one); per seed and row: `entropies`
    (summed token entropy of each sample) with `lengths` (its tokens). Rows with a family
    (`category`) also get per-family entries."""
    if (entropies is None) != (lengths is None):
        raise ValueError("entropies and lengths come together")
    scored = _SetTexts(references, answers, sampled, greedy, label_references, fact_checks, entropies, lengths)
    entry = _subset_results(list(range(len(references))), scored)
    if "answer_rows" in entry:
        entry["accuracy_decoding"] = "greedy" if greedy is not None else "sampled"
    by_family: dict[str, list[int]] = {}
    for index, family in enumerate(families):
        if family:
            by_family.setdefault(family, []).append(index)
    if by_family:
        entry["families"] = {family: _subset_results(rows, scored) for family, rows in by_family.items()}
    return entry


def eval_set_path(data_root: str | Path, name: str) -> Path:
    return Path(data_root) / EVAL_SET_DIRS.get(name, name) / "valid.jsonl"


def _eval_row_prompt(row: dict, path: Path, line: int) -> str:
    """A row's prompt: its `prompt`, else the template filled with `instruction` (+ `input`);
    refuses a field of another type and a row that leaves the prompt empty."""
    for name in ("prompt", "instruction", "input", "answer"):
        if name in row and not isinstance(row[name], str):
            raise DataFormatError(path, line, name, f"expected a string, got {type(row[name]).__name__}")
    if row.get("prompt", "").strip():
        return row["prompt"]
    if "instruction" not in row:
        raise DataFormatError(path, line, "prompt", "empty" if "prompt" in row else "missing (and no 'instruction')")
    if not (row["instruction"] + row.get("input", "")).strip():
        raise DataFormatError(path, line, "instruction", "empty, as are 'input' and 'prompt'")
    return build_prompt(row["instruction"], row.get("input", ""))


def _eval_row_reference(row: dict, path: Path, line: int) -> str | list[str]:
    """`output`: one reference, or a list of them (S-NI)."""
    if "output" not in row:
        raise DataFormatError(path, line, "output", "missing")
    output = row["output"]
    if isinstance(output, list) and output and all(isinstance(reference, str) for reference in output):
        return output
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        found = type(output).__name__
    elif not output:
        found = "an empty list"
    else:
        found = "a list holding " + ", ".join(sorted({type(r).__name__ for r in output if not isinstance(r, str)}))
    raise DataFormatError(path, line, "output", f"expected a string or a list of strings, got {found}")


def load_eval_set(data_root: str | Path, name: str, prompt_prefix: str = "") -> EvalSet:
    """Rows with `output` (str or list of str) and either `prompt` or `instruction` (+ `input`),
    optionally `answer` (str); every prompt is preceded by `prompt_prefix` (the task prefix of a
    step-by-step student). A bad row is refused with file:line and field (DataFormatError)."""
    path = eval_set_path(data_root, name)
    rows, prompts, refs = [], [], []
    for line, row in read_jsonl(path):
        prompt = _eval_row_prompt(row, path, line)
        refs.append(_eval_row_reference(row, path, line))
        rows.append(row)
        prompts.append(prompt_prefix + prompt)
    if not rows:
        raise ValueError(f"{path}: eval set {name!r} has no rows")
    return EvalSet(name, path, rows, prompts, refs)


def decode_responses(tokenizer, tokens: torch.Tensor, lengths: torch.Tensor, eos_token_id: int) -> list[str]:
    """Cut each row at its first EOS (the EOS itself is not part of the answer)."""
    texts = []
    for row, length in zip(tokens.tolist(), lengths.tolist()):
        row = row[:length]
        if row and row[-1] == eos_token_id:
            row = row[:-1]
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
    return texts


@dataclass
class Generations:
    """One sampled response per prompt, in prompt order. With a teacher: per response, its
    length and the summed log-probabilities of its tokens under the student and the teacher. With
    record_entropy: per response, the summed entropy of the model's distribution at its tokens."""
    texts: list[str]
    lengths: list[int]
    student_logprobs: list[float] | None = None
    teacher_logprobs: list[float] | None = None
    entropies: list[float] | None = None


@torch.no_grad()
def generate_texts(model: torch.nn.Module, tokenizer, prompts: Sequence[np.ndarray], config: SamplingConfig,
                   *, seed: int, dist_info: DistInfo, max_prompt_length: int, batch_tokens: int,
                   sync_ranks: bool = False, logger: RunLogger | None = None, desc: str = "generate",
                   teacher: torch.nn.Module | None = None, record_entropy: bool = False) -> Generations:
    """Sample one response per prompt (token arrays) from `model`; every rank returns them all.
    A `teacher` only scores the samples (for reverse-KL and reward estimates), it never mixes.
    record_entropy: also each response's summed per-token entropy (`Generations.entropies`)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    indices, real = shard_for_rank(len(prompts), dist_info.rank, dist_info.world_size)
    order = sorted(range(len(indices)), key=lambda k: -min(len(prompts[indices[k]]), max_prompt_length))
    generator = torch.Generator(device=dist_info.device).manual_seed(seed * 1009 + dist_info.rank)
    models = [m for m in (model, teacher) if m is not None]
    modes = [m.training for m in models]
    for m in models:
        m.eval()
    local: dict[int, tuple] = {}
    if logger is not None:
        logger.progress(len(order), desc=desc)
    start = 0
    while start < len(order):
        longest = min(len(prompts[indices[order[start]]]), max_prompt_length)
        # Under ZeRO-3 every rank must run the same batches: fixed rows per batch then.
        width = max_prompt_length if sync_ranks else longest
        rows = max(1, batch_tokens // (width + config.max_new_tokens))
        chunk = order[start:start + rows]
        batch = collate_prompts([prompts[indices[k]] for k in chunk], pad, max_prompt_length)
        out = sample(model, batch["input_ids"].to(dist_info.device), batch["attention_mask"].to(dist_info.device),
                     config, eos, pad, generator=generator, sync_ranks=sync_ranks, teacher=teacher,
                     record_logprobs=teacher is not None, record_entropy=record_entropy)
        texts = decode_responses(tokenizer, out.tokens.cpu(), out.lengths.cpu(), eos)
        scores = ([out.student_logprobs.sum(1).tolist(), out.teacher_logprobs.sum(1).tolist()]
                  if teacher is not None else [[None] * len(chunk)] * 2)
        entropies = out.entropy.sum(1).tolist() if record_entropy else [None] * len(chunk)
        for k, text, length, student_lp, teacher_lp, entropy in zip(chunk, texts, out.lengths.tolist(), *scores,
                                                                    entropies):
            if real[k]:
                local[indices[k]] = (text, length, student_lp, teacher_lp, entropy)
        start += len(chunk)
        if logger is not None:
            logger.advance(len(chunk))
    if logger is not None:
        logger.close_progress()
    for m, mode in zip(models, modes):
        m.train(mode)
    texts, lengths, student_lps, teacher_lps, entropies = (zip(*_gather_by_index(local, len(prompts))) if prompts
                                                           else ([],) * 5)
    return Generations(list(texts), list(lengths), list(student_lps) if teacher is not None else None,
                       list(teacher_lps) if teacher is not None else None,
                       list(entropies) if record_entropy else None)


def _gather_by_index(local: dict[int, tuple], total: int) -> list[tuple]:
    if dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[dict[int, tuple]] = [None] * dist.get_world_size()  # type: ignore[list-item]
        dist.all_gather_object(parts, local)
        for part in parts:
            local.update(part)
    missing = total - len(local)
    if missing:
        raise RuntimeError(f"generation lost {missing} of {total} responses")
    return [local[i] for i in range(total)]


@torch.no_grad()
def token_divergences(student: torch.nn.Module, teacher: torch.nn.Module, dataset, names: Sequence[str],
                      vocab_size: int, pad_id: int, batch_size: int = 16) -> dict[str, float]:
    """Mean per-token divergence D(teacher ‖ student) over the response tokens of `dataset`
    (a TokenDataset), for each divergence name of minillm.losses: how close a student is."""
    device = next(student.parameters()).device
    student.eval()
    teacher.eval()
    sums = dict.fromkeys(names, 0.0)
    tokens = 0
    for start in range(0, len(dataset), batch_size):
        batch = collate_sft([dataset.example(i) for i in range(start, min(start + batch_size, len(dataset)))], pad_id)
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "position_ids")}
        mask = (batch["labels"] != IGNORE_INDEX).to(device)
        student_logits, teacher_logits = student(**inputs).logits, teacher(**inputs).logits
        for name in names:
            sums[name] += float(divergence(name, student_logits, teacher_logits, mask, reduction="sum",
                                           vocab_size=vocab_size))
        tokens += int(mask.sum())
    return {name: total / max(tokens, 1) for name, total in sums.items()}
