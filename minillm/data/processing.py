"""Shared building blocks for tools that turn raw JSON-lines files into `.bin`/`.idx` datasets.

Reading with line-precise errors, normalising instruction records, MiniLLM's instruction
encoding, order-preserving parallel tokenisation and all-or-nothing text output live here so
that every processing tool (instruction data, pretraining corpora, rationales) behaves alike.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from minillm.data.templates import build_task_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Item = TypeVar("Item")
Result = TypeVar("Result")


class DataFormatError(ValueError):
    """A problem in an input file, located by file, line and (when known) field."""

    def __init__(self, path: str | os.PathLike, line: int, field: str | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        location = f"{self.path}:{line}:"
        super().__init__(
            f"{location} field '{field}': {message}" if field else f"{location} {message}"
        )


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, object)` for every line; blank, non-UTF-8 or non-object lines are errors."""
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataFormatError(path, line_number, None,
                                      f"not valid UTF-8 (byte {error.start} of the line: {error.reason})") from None
            if not line.strip():
                raise DataFormatError(path, line_number, None, "blank line")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataFormatError(path, line_number, None, f"malformed JSON: {error}") from None
            if not isinstance(record, dict):
                raise DataFormatError(
                    path, line_number, None, f"expected a JSON object, got {type(record).__name__}"
                )
            yield line_number, record


def _string_field(
    record: dict[str, Any],
    names: tuple[str, ...],
    path: str | os.PathLike,
    line: int,
    default: str | None,
) -> tuple[str | None, str]:
    """Return (key used, value) for the first present name; missing uses `default` or fails."""
    for name in names:
        if name in record:
            value = record[name]
            if not isinstance(value, str):
                found = type(value).__name__
                raise DataFormatError(path, line, name, f"expected a string, got {found}")
            return name, value
    if default is None:
        raise DataFormatError(path, line, " or ".join(names), "missing")
    return None, default


def normalize_instruction_record(
    record: dict[str, Any], path: str | os.PathLike, line: int
) -> dict[str, Any]:
    """Map MiniLLM (`input`, `output`) or dolly-15k (`context`, `response`) names to one schema.

    Returns `instruction`, `input` ("" when absent) and `output` first, followed by every other
    field of the record unchanged (e.g. `rationale`, `answer`, `category`) for later tools.
    """
    used_instruction, instruction = _string_field(record, ("instruction",), path, line, None)
    used_input, input_text = _string_field(record, ("input", "context"), path, line, "")
    used_output, output = _string_field(record, ("output", "response"), path, line, None)
    consumed = {used_instruction, used_input, used_output}
    extras = {key: value for key, value in record.items() if key not in consumed}
    return {"instruction": instruction, "input": input_text, "output": output, **extras}


@dataclass(frozen=True)
class EncodedExample:
    """A tokenised instruction example; `response_ids` ends with EOS."""

    prompt: str
    prompt_ids: list[int]
    response_ids: list[int]


def encode_instruction_example(
    tokenizer: PreTrainedTokenizerBase,
    record: dict[str, Any],
    max_prompt_length: int,
    target_field: str = "output",
    task_prefix: str = "",
) -> EncodedExample | None:
    """Tokenise as MiniLLM does; None when the prompt exceeds `max_prompt_length` tokens.

    The response is `record[target_field]`; the prompt is the template preceded by `task_prefix`
    (step-by-step distillation's task streams). The response ids are taken from the encoding of
    prompt + response (not of the response alone) so that merges across the boundary match
    MiniLLM's token ids exactly.
    """
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no EOS token")
    prompt = build_task_prompt(task_prefix, record["instruction"], record["input"])
    # verbose=False: the "longer than the model's maximum length" warning is irrelevant here.
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False, verbose=False)
    if len(prompt_ids) > max_prompt_length:
        return None
    full_ids = tokenizer.encode(prompt + record[target_field], add_special_tokens=False, verbose=False)
    full_ids.append(tokenizer.eos_token_id)
    return EncodedExample(prompt, prompt_ids, full_ids[len(prompt_ids) :])


def _load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    # Imported here: the row readers and converters above serve tools that tokenise nothing
    # (tools/import_rationales.py), and transformers costs seconds of start-up.
    from minillm.modeling import load_tokenizer
    return load_tokenizer(path)


_worker_tokenizer: PreTrainedTokenizerBase | None = None


def _init_worker(tokenizer_path: str) -> None:
    global _worker_tokenizer
    _worker_tokenizer = _load_tokenizer(tokenizer_path)


def _apply_with_worker_tokenizer(
    function: Callable[[PreTrainedTokenizerBase, Item], Result], item: Item
) -> Result:
    return function(_worker_tokenizer, item)


def map_with_tokenizer(
    function: Callable[[PreTrainedTokenizerBase, Item], Result],
    items: Iterable[Item],
    tokenizer_path: str | os.PathLike,
    workers: int,
    chunksize: int = 64,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Iterator[Result]:
    """Yield `function(tokenizer, item)` for each item, in input order, on `workers` processes.

    Each pool process loads the tokenizer once. With `workers <= 1` everything runs in this
    process, reusing `tokenizer` when given. `function` must be picklable (module-level or a
    `functools.partial` of one) when `workers > 1`.
    """
    if workers <= 1:
        local_tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(tokenizer_path)
        for item in items:
            yield function(local_tokenizer, item)
        return
    initargs = (str(tokenizer_path),)
    with multiprocessing.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
        yield from pool.imap(
            functools.partial(_apply_with_worker_tokenizer, function), items, chunksize=chunksize
        )
