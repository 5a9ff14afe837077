"""The embedded default: synthetic rows are seeded, valid and exactly checkable; the builder's
dataset, tokenizer and models load offline and belong together."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from minillm.data.templates import build_prompt
from minillm.synthetic import (
    CATEGORIES,
    FAMILIES,
    REASONING_FAMILIES,
    generate_rows,
    pretrain_document,
    prompt_key,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
EQUATION = re.compile(r"(\d+) ([+-]) (\d+) = (\d+)")


def _load_builder():
    spec = importlib.util.spec_from_file_location("make_tiny_default", REPO_ROOT / "tools" / "make_tiny_default.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _checked_equations(rationale: str) -> list[tuple[int, int, int]]:
    """(left, right, result) of each of the rationale's equations, verified."""
    equations = []
    for left, sign, right, result in EQUATION.findall(rationale):
        assert int(left) + (int(right) if sign == "+" else -int(right)) == int(result), rationale
        equations.append((int(left), int(right), int(result)))
    return equations


def _answer_arithmetic(row: dict) -> int:
    start, *changes = (int(n) for n in re.findall(r"\d+", row["instruction"]))
    equations = _checked_equations(row["rationale"])
    assert [right for _, right, _ in equations] == changes
    assert [left for left, _, _ in equations] == [start] + [result for _, _, result in equations[:-1]]
    assert all(result >= 0 for _, _, result in equations)
    return equations[-1][2]


def _answer_sequence(row: dict) -> int:
    terms = [int(n) for n in re.findall(r"\d+", row["instruction"])]
    steps = {b - a for a, b in zip(terms, terms[1:])}
    assert len(steps) == 1
    [(left, right, result)] = _checked_equations(row["rationale"])
    assert left == terms[-1] and result == terms[-1] + steps.pop()
    return result


def _answer_counting(row: dict) -> int:
    category = re.fullmatch(r"How many (.+) are in the list\?", row["instruction"]).group(1)
    members = {singular for singular, _ in CATEGORIES[category][1]}
    found = [item for item in row["input"].split(", ") if item in members]
    listed = re.search(r"are (.+)\. That makes", row["rationale"]).group(1).replace(" and ", ", ").split(", ")
    assert listed == found
    return len(found)


ANSWER_FROM_QUESTION = {"arithmetic": _answer_arithmetic, "sequence": _answer_sequence,
                        "counting": _answer_counting}


def test_same_seed_same_rows_different_seed_different_rows():
    assert generate_rows(60, seed=1) == generate_rows(60, seed=1)
    assert generate_rows(60, seed=1) != generate_rows(60, seed=2)


def test_every_reasoning_family_has_an_answer_check():
    assert set(ANSWER_FROM_QUESTION) == set(REASONING_FAMILIES) <= set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_rows_are_valid(family):
    for row in generate_rows(80, seed=3, families=[family]):
        assert set(row) == {"instruction", "input", "output", "category", "rationale", "answer"}
        assert row["category"] == family and row["instruction"] and row["output"]
        assert 5 <= len(row["output"].split()) <= 40
        assert "\n" not in "".join(row.values())
        if family in REASONING_FAMILIES:
            assert row["rationale"] and row["answer"] == str(ANSWER_FROM_QUESTION[family](row))
            assert row["answer"] in re.findall(r"\d+", row["output"])
        else:
            assert row["rationale"] == row["answer"] == ""


def test_both_prompt_templates_occur():
    assert {bool(row["input"]) for row in generate_rows(60, seed=0)} == {True, False}


def test_distinct_from_excludes_known_prompts_and_repeats():
    known = {prompt_key(row) for row in generate_rows(200, seed=0)}
    rows = generate_rows(100, seed=1, distinct_from=known)
    keys = [prompt_key(row) for row in rows]
    assert len(set(keys)) == len(keys) and not set(keys) & known


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown families"):
        generate_rows(3, seed=0, families=["poetry"])


SIZES = {"n_train": 120, "n_dev": 20, "n_test": 30, "n_pretrain": 40}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = _load_builder()
    root = tmp_path_factory.mktemp("tiny_default")
    paths = builder.build_default(root, seed=0, vocab_size=600, n_positions=128,
                                  teacher=builder.ModelShape(2, 2, 32), student=builder.ModelShape(1, 1, 16),
                                  **SIZES)
    return builder, root, paths


def _jsonl(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_dataset_splits_and_no_test_leak(built):
    _, _, paths = built
    raw, test = _jsonl(paths["data"] / "raw.jsonl"), _jsonl(paths["data"] / "valid.jsonl")
    assert len(raw) == SIZES["n_dev"] + SIZES["n_train"] and len(test) == SIZES["n_test"]
    assert all(row["prompt"] == build_prompt(row["instruction"], row["input"]) for row in test)
    test_keys = {prompt_key(row) for row in test}
    assert len(test_keys) == len(test) and not test_keys & {prompt_key(row) for row in raw}
    documents = (paths["data"] / "pretrain.txt").read_text(encoding="utf-8").splitlines()
    assert len(documents) == SIZES["n_pretrain"]
    test_documents = {pretrain_document(row) for row in test}
    assert not test_documents & set(documents)


def test_tokenizer_loads_offline_and_round_trips(built):
    _, _, paths = built
    tokenizer = AutoTokenizer.from_pretrained(paths["tokenizer"], local_files_only=True)
    assert "GPT2" in type(tokenizer).__name__
    assert tokenizer.eos_token == tokenizer.bos_token == "<|endoftext|>"
    assert tokenizer.pad_token in (None, tokenizer.eos_token)
    row = _jsonl(paths["data"] / "valid.jsonl")[0]
    text = row["prompt"] + row["output"] + "\n  ünïcode"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.eos_token_id not in ids and tokenizer.decode(ids) == text


def test_models_load_and_share_the_vocabulary(built):
    _, _, paths = built
    tokenizer = AutoTokenizer.from_pretrained(paths["tokenizer"], local_files_only=True)
    for role, width in (("teacher", 32), ("student", 16)):
        assert (paths[role] / "model.safetensors").exists() and (paths[role] / "tokenizer.json").exists()
        model = AutoModelForCausalLM.from_pretrained(paths[role], local_files_only=True)
        assert model.config.n_embd == width
        assert model.config.vocab_size == len(tokenizer) == model.get_input_embeddings().weight.shape[0]
        assert model.config.eos_token_id == model.config.bos_token_id == tokenizer.eos_token_id


def test_rebuild_skips_existing_parts(built, capsys):
    builder, root, paths = built
    before = {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}
    builder.build_default(root, seed=0, **SIZES)
    assert capsys.readouterr().out.count("skipped") == len(paths)
    assert before == {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}
