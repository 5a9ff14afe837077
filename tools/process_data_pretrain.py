"""Cut a one-document-per-line text corpus into fixed-length chunks for MiniLLM's pretraining loss.

Each non-empty line is a document: it is tokenised without special tokens, EOS is appended, all
documents are concatenated in input order and cut into `--chunk-length`-token chunks (the
incomplete tail is dropped). The first `--dev-num` chunks form `valid_0`, the rest `train_0`, in
`{processed_data_dir}/{model_type}/`: the `.bin`/`.idx` format of the instruction data, but with
no split id, so every position is supervised (ref §2). The corpus is streamed, so its size is
limited by disk rather than memory, and the output folder is published whole (replacing any
earlier one, with `data_manifest.json`: tokenizer, settings, the corpus's sha256) only after the
whole corpus has been processed, so a failure leaves no output.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from transformers import PreTrainedTokenizerBase

from minillm.data.indexed import IndexedDatasetWriter, best_dtype
from minillm.data.manifest import write_data_manifest
from minillm.data.processing import DataFormatError, map_with_tokenizer
from minillm.fileio import atomic_directory
from minillm.modeling import load_tokenizer

# Documents per pool task, and how many tasks per worker may wait for the writer: enough to keep
# every worker busy, few enough that memory does not grow with the corpus.
TASK_SIZE = 64
TASKS_IN_FLIGHT_PER_WORKER = 4


class CorpusTooSmallError(Exception):
    """The corpus does not fill the validation chunks plus at least one training chunk."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """MiniLLM-style flag names, matching tools/process_data_dolly.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path", required=True, help="text file, one document per line")
    parser.add_argument("--processed-data-dir", required=True)
    parser.add_argument("--model-path", required=True, help="local tokenizer folder")
    parser.add_argument("--model-type", required=True, help="output subfolder, e.g. gpt2")
    parser.add_argument("--chunk-length", type=int, default=512, help="tokens per chunk")
    parser.add_argument("--dev-num", type=int, default=100, help="first N chunks form 'valid'")
    parser.add_argument("--data-process-workers", type=int, default=1)
    parser.add_argument("--max-docs", type=int, default=0, help="stop after N documents (0 = all)")
    args = parser.parse_args(argv)
    if args.chunk_length < 1:
        parser.error(f"--chunk-length must be positive, got {args.chunk_length}")
    for flag in ("dev_num", "max_docs"):
        if getattr(args, flag) < 0:
            parser.error(f"--{flag.replace('_', '-')} must not be negative")
    return args


def encode_document(tokenizer: PreTrainedTokenizerBase, line: bytes) -> np.ndarray | None:
    """Token ids of one corpus line plus EOS; empty for a blank line, None when not UTF-8.

    Runs in pool workers, so problems are returned rather than raised: only the writer knows the
    line number, and DataFormatError does not survive the trip back from a worker.
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text.strip():
        return np.empty(0, dtype=np.int32)
    ids = tokenizer.encode(text, add_special_tokens=False, verbose=False)
    ids.append(tokenizer.eos_token_id)
    return np.asarray(ids, dtype=np.int32)


class BoundedFeed:
    """Hands corpus lines to the tokenising pool while at most `limit` await the writer.

    `multiprocessing.Pool.imap` pulls its input as fast as the workers go and keeps every result
    until it is consumed, so without this bound a slower writer would let a multi-GB corpus pile
    up in memory. The pool's feeder thread waits here until the writer `acknowledge`s a result;
    `stop` releases it for good, so tearing the pool down can never wait on a blocked feeder.
    """

    def __init__(self, lines: Iterable[bytes], limit: int) -> None:
        self._lines = lines
        self._slots = threading.Semaphore(limit)
        self._stopped = False

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            self._slots.acquire()
            if self._stopped:
                return
            yield line

    def acknowledge(self) -> None:
        """One result has been consumed: let one more line in."""
        self._slots.release()

    def stop(self) -> None:
        """End the feed; the feeder thread returns at its next line."""
        self._stopped = True
        self._slots.release()


class ChunkBuffer:
    """Concatenates documents and cuts fixed-length chunks, keeping under one chunk in between."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.pending = 0
        self._parts: list[np.ndarray] = []

    def add(self, ids: np.ndarray) -> list[np.ndarray]:
        """Append one document; return the chunks it completes (none, one or several)."""
        self._parts.append(ids)
        self.pending += len(ids)
        if self.pending < self.length:
            return []
        joined = np.concatenate(self._parts)
        complete = len(joined) - len(joined) % self.length
        # A copy, so the remainder does not keep a long document's whole array alive.
        self._parts = [joined[complete:].copy()]
        self.pending = len(joined) - complete
        return [joined[start : start + self.length] for start in range(0, complete, self.length)]


@dataclass
class CorpusReport:
    """Counts printed after processing."""

    chunk_length: int
    max_docs: int
    chunks: dict[str, int]
    lines_read: int = 0
    empty_lines: int = 0
    documents: int = 0
    tokens: int = 0
    dropped_tail_tokens: int = 0

    def lines(self) -> list[str]:
        reached = self.max_docs and self.documents == self.max_docs
        limit = " (--max-docs reached)" if reached else ""
        return [
            f"lines read {self.lines_read}: documents {self.documents}{limit}, "
            f"empty lines skipped {self.empty_lines}",
            f"tokens {self.tokens} (including one EOS per document)",
            *(f"[{name}] chunks {count}" for name, count in self.chunks.items()),
            f"dropped tail tokens {self.dropped_tail_tokens} (less than one chunk of "
            f"{self.chunk_length})",
        ]


def write_chunks(
    corpus: BinaryIO,
    data_path: str,
    output_dir: str,
    args: argparse.Namespace,
    tokenizer: PreTrainedTokenizerBase,
) -> CorpusReport:
    """Stream the corpus into `valid_0` (first `dev_num` chunks) and `train_0`; all or nothing."""
    split_names = ["valid", "train"] if args.dev_num > 0 else ["train"]
    report = CorpusReport(args.chunk_length, args.max_docs, {name: 0 for name in split_names})
    buffer = ChunkBuffer(args.chunk_length)
    workers = max(args.data_process_workers, 1)
    feed = BoundedFeed(corpus, limit=workers * TASK_SIZE * TASKS_IN_FLIGHT_PER_WORKER)
    dtype = best_dtype(len(tokenizer))
    with contextlib.ExitStack() as stack:
        # Exit order (reverse): stop the feed, shut the pool, then publish or discard the splits.
        writers = {
            name: stack.enter_context(
                IndexedDatasetWriter(os.path.join(output_dir, f"{name}_0"), dtype)
            )
            for name in split_names
        }
        documents = stack.enter_context(
            contextlib.closing(
                map_with_tokenizer(
                    encode_document,
                    feed,
                    args.model_path,
                    args.data_process_workers,
                    chunksize=TASK_SIZE,
                    tokenizer=tokenizer,
                )
            )
        )
        stack.callback(feed.stop)
        for line_number, ids in enumerate(documents, start=1):
            feed.acknowledge()
            report.lines_read = line_number
            if ids is None:
                raise DataFormatError(data_path, line_number, None, "not valid UTF-8")
            if not len(ids):
                report.empty_lines += 1
                continue
            report.documents += 1
            report.tokens += len(ids)
            for chunk in buffer.add(ids):
                name = "valid" if sum(report.chunks.values()) < args.dev_num else "train"
                writers[name].add_item(chunk)
                report.chunks[name] += 1
            if report.documents == args.max_docs:
                break
        report.dropped_tail_tokens = buffer.pending
        if not report.chunks["train"]:
            total = sum(report.chunks.values())
            raise CorpusTooSmallError(
                f"{data_path}: {report.tokens} tokens make {total} chunks of "
                f"{args.chunk_length}, none left for train after the {args.dev_num} for valid; "
                "lower --dev-num or --chunk-length, or use a larger corpus"
            )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the process exit status (1 on bad input, with a one-line message)."""
    args = parse_args(argv)
    output_dir = os.path.join(args.processed_data_dir, args.model_type)
    try:
        tokenizer = load_tokenizer(args.model_path)
        with open(args.data_path, "rb") as corpus, atomic_directory(output_dir) as staging:
            dtype_name = best_dtype(len(tokenizer)).name
            print(
                f"{args.data_path} -> {output_dir} "
                f"(chunks of {args.chunk_length} tokens, dtype {dtype_name})"
            )
            report = write_chunks(corpus, args.data_path, str(staging), args, tokenizer)
            write_data_manifest(staging, tool="tools/process_data_pretrain.py", tokenizer=tokenizer,
                                tokenizer_path=args.model_path, sources=[args.data_path], splits=report.chunks,
                                settings={"chunk_length": args.chunk_length, "dev_num": args.dev_num,
                                          "max_docs": args.max_docs})
    except (DataFormatError, CorpusTooSmallError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
