"""Shared pytest fixtures (a tiny local tokenizer so data tests run offline in seconds, the toy
world) and the order the test files run in."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest

# Entrypoints and tools import `minillm` from the checkout; tests import the `world` helpers.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers (pytest -n) share the cores: one thread for each, in process and in what it
    # launches (set before torch is imported; a test that needs a count sets its own).
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

EOS_TOKEN = "<|endoftext|>"

# The files that run the driver end to end, longest first (`pytest --durations` under two workers:
# ~10 and ~4 min of the suite's ~15). xdist hands whole files to the workers in collection order
# (pyproject: --dist loadfile --no-loadscope-reorder), so these start at once, side by side, and the
# short files fill the cores around them instead of leaving one core idle at the end.
LONGEST_FILES = ("test_driver.py", "test_custom_preset.py")

_TRAINING_TEXT = [
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.",
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context.",
    "### Instruction:\n### Input:\n### Response:\n",
    "The quick brown fox jumps over the lazy dog. Alpacas and llamas live in the Andes.",
    "Summarise the paragraph in one sentence. Answer the question using the context.",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """LONGEST_FILES first, then the other files with the most tests first (xdist's own order);
    the tests of a file keep their order."""
    first = {name: rank for rank, name in enumerate(LONGEST_FILES)}
    tests_in = Counter(item.path for item in items)
    items.sort(key=lambda item: (first.get(item.path.name, len(first)), -tests_in[item.path], str(item.path)))


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE tokenizer (a few hundred tokens, EOS `<|endoftext|>`) saved for
    `AutoTokenizer.from_pretrained`; byte-level so any text, including non-ASCII, encodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_TRAINING_TEXT, trainer=trainer)
    directory = tmp_path_factory.mktemp("tiny_tokenizer")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS_TOKEN).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory):
    """The embedded default at toy sizes (data, tokenizer, teacher, student), processed."""
    from world import build_world

    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def trained_teacher(world, tmp_path_factory):
    """The toy teacher after a short SFT: a distribution that students can move toward."""
    from world import sft_run

    return sft_run(world, world.teacher, tmp_path_factory.mktemp("teacher") / "run", steps=60)


@pytest.fixture(scope="session")
def sft_student(world, tmp_path_factory):
    """The toy student after a short SFT: MiniLLM's initialisation."""
    from world import sft_run

    return sft_run(world, world.student, tmp_path_factory.mktemp("student") / "run", steps=30)


@pytest.fixture(autouse=True)
def no_process_group_leaks_into_pytest():
    """Entrypoints and tools run as subprocesses: one that starts a process group inside pytest
    leaves RANK/MASTER_PORT behind, and every later launch inherits them (and a taken port)."""
    yield
    assert "RANK" not in os.environ, "a test started a distributed process group inside the pytest process"

