"""tools/process_data_pretrain.py: EOS-separated documents cut into fully supervised chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from minillm.data.datasets import TokenDataset, collate_sft
from minillm.data.indexed import IndexedDataset
from minillm.losses import IGNORE_INDEX
from world import load_tool

TOOL = load_tool("process_data_pretrain")

# Blank and whitespace-only lines, a CRLF ending, non-ASCII text and a document spanning chunks.
CORPUS_LINES = [
    "The quick brown fox jumps over the lazy dog.",
    "",
    "Alpacas and llamas live in the Andes. ü ñ 漢字",
    "   ",
    "Summarise the paragraph in one sentence.\r",
    "\t",
    "Answer the question using the context. " * 12,
    "Below is an instruction that describes a task.",
]
BLANK_LINES = 3


def run_tool(corpus: Path, out_dir: Path, tokenizer_dir: Path, *extra: str) -> int:
    return TOOL.main([
        "--data-path", str(corpus),
        "--processed-data-dir", str(out_dir),
        "--model-path", str(tokenizer_dir),
        "--model-type", "tiny",
        *extra,
    ])


def write_corpus(path: Path, lines: list[str]) -> Path:
    path.write_bytes("".join(line + "\n" for line in lines).encode("utf-8"))
    return path


def token_stream(corpus: Path, tokenizer_dir: Path) -> np.ndarray:
    """Every non-empty line tokenised + EOS, concatenated: what the chunks must cut up."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    ids: list[int] = []
    for line in corpus.read_text(encoding="utf-8").split("\n"):
        line = line.removesuffix("\r")
        if line.strip():
            ids += tokenizer.encode(line, add_special_tokens=False) + [tokenizer.eos_token_id]
    return np.asarray(ids)


def whole_chunks(stream: np.ndarray, chunk_length: int) -> np.ndarray:
    """The stream without its incomplete tail."""
    return stream[: len(stream) - len(stream) % chunk_length]


def read_chunks(out_dir: Path, split: str) -> list[np.ndarray]:
    dataset = IndexedDataset(str(out_dir / "tiny" / f"{split}_0"))
    return [np.asarray(dataset[index]) for index in range(len(dataset))]


def test_world_corpus_chunks_match_the_recomputation(world, tmp_path, capsys):
    corpus, chunk_length = world.data / "pretrain.txt", 64
    assert run_tool(corpus, tmp_path, world.tokenizer, "--chunk-length", str(chunk_length),
                    "--dev-num", "5") == 0
    valid, train = read_chunks(tmp_path, "valid"), read_chunks(tmp_path, "train")
    assert len(valid) == 5 and len(train) > 0
    assert all(len(chunk) == chunk_length for chunk in valid + train)
    stream = token_stream(corpus, world.tokenizer)
    np.testing.assert_array_equal(np.concatenate(valid + train), whole_chunks(stream, chunk_length))
    report = capsys.readouterr().out
    assert f"tokens {len(stream)} (including one EOS per document)" in report
    assert f"[valid] chunks 5\n[train] chunks {len(train)}\n" in report
    assert f"dropped tail tokens {len(stream) % chunk_length} " in report


def test_blank_lines_are_skipped_and_workers_agree(tiny_tokenizer_dir, tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.txt", CORPUS_LINES)
    outputs = {}
    for workers in ("1", "2"):
        out_dir = tmp_path / f"out{workers}"
        assert run_tool(corpus, out_dir, tiny_tokenizer_dir, "--chunk-length", "16",
                        "--dev-num", "2", "--data-process-workers", workers) == 0
        outputs[workers] = {path.name: path.read_bytes() for path in (out_dir / "tiny").iterdir()}
        report = capsys.readouterr().out
        documents = len(CORPUS_LINES) - BLANK_LINES
        assert f"documents {documents}, empty lines skipped {BLANK_LINES}" in report
    assert sorted(outputs["1"]) == ["data_manifest.json", "train_0.bin", "train_0.idx", "valid_0.bin", "valid_0.idx"]
    assert outputs["1"] == outputs["2"]
    chunks = read_chunks(tmp_path / "out1", "valid") + read_chunks(tmp_path / "out1", "train")
    np.testing.assert_array_equal(np.concatenate(chunks),
                                  whole_chunks(token_stream(corpus, tiny_tokenizer_dir), 16))


def test_max_docs_and_no_validation_split(tiny_tokenizer_dir, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", CORPUS_LINES)
    first_three = write_corpus(tmp_path / "first.txt", CORPUS_LINES[:5])  # 3 documents, 2 blanks
    assert run_tool(corpus, tmp_path / "out", tiny_tokenizer_dir, "--chunk-length", "8",
                    "--dev-num", "0", "--max-docs", "3") == 0
    assert sorted(path.name for path in (tmp_path / "out" / "tiny").iterdir()) == [
        "data_manifest.json", "train_0.bin", "train_0.idx"]
    np.testing.assert_array_equal(np.concatenate(read_chunks(tmp_path / "out", "train")),
                                  whole_chunks(token_stream(first_three, tiny_tokenizer_dir), 8))


def test_chunks_are_read_back_fully_supervised(tiny_tokenizer_dir, tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", CORPUS_LINES)
    assert run_tool(corpus, tmp_path, tiny_tokenizer_dir, "--chunk-length", "16",
                    "--dev-num", "0") == 0
    dataset = TokenDataset(tmp_path / "tiny", "train", max_length=16)
    examples = [dataset.example(index) for index in range(len(dataset))]
    assert all(example.prompt_len == 0 and len(example.tokens) == 16 for example in examples)
    batch = collate_sft(examples, pad_id=0)
    assert not (batch["labels"] == IGNORE_INDEX).any()
    expected_labels = np.stack([example.tokens[1:] for example in examples])
    np.testing.assert_array_equal(batch["labels"].numpy(), expected_labels)
    assert batch["attention_mask"].all()


@pytest.mark.parametrize("case", ["missing file", "invalid UTF-8", "too few chunks"])
def test_failures_are_reported_and_leave_no_output(case, tiny_tokenizer_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    dev_num = "2"
    if case == "invalid UTF-8":
        write_corpus(corpus, CORPUS_LINES * 20)
        with open(corpus, "ab") as handle:  # after many chunks are written
            handle.write(b"broken \xff byte\n")
        message = f"{corpus}:{len(CORPUS_LINES) * 20 + 1}: not valid UTF-8"
    elif case == "too few chunks":
        write_corpus(corpus, CORPUS_LINES)
        dev_num = "1000"
        message = "none left for train after the 1000 for valid"
    else:
        message = f"No such file or directory: '{corpus}'"
    out_dir = tmp_path / "out"
    assert run_tool(corpus, out_dir, tiny_tokenizer_dir, "--chunk-length", "16",
                    "--dev-num", dev_num, "--data-process-workers", "2") == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error
    leftovers = [path for path in out_dir.rglob("*") if path.is_file()] if out_dir.exists() else []
    assert leftovers == []
    if case == "missing file":
        assert not out_dir.exists()
