"""The embedded default: synthetic rows are seeded, valid and exactly checkable; the builder's
dataset, tokenizer and models load offline and belong together."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from world import load_tool

from minillm.data.synthetic import (
    ANIMALS,
    FAMILIES,
    LEGS,
    MULTI_ANSWER_FAMILIES,
    REASONING_FAMILIES,
    SIZE_ORDER,
    composition_key,
    generate_rows,
    prompt_key,
    write_default_dataset,
)
from minillm.data.templates import build_prompt
from minillm.metrics import answer_correct, fact_scores

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load_builder():
    spec = importlib.util.spec_from_file_location("make_tiny_default", REPO_ROOT / "tools" / "make_tiny_default.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _listed(row: dict) -> list[str]:
    """The animals a question names, in order."""
    return [word for word in re.findall(r"\w+", row["instruction"]) if word in ANIMALS]


def _largest(animals: list[str], rank) -> str:
    assert len({rank(animal) for animal in animals}) == len(animals)
    return max(animals, key=rank)


def _size(animal: str) -> int:
    return SIZE_ORDER.index(ANIMALS[animal].size)


FACT_FAMILIES = ("describe", "compare", "extract")
ANSWER_FROM_QUESTION = {"biggest": lambda row: _largest(_listed(row), _size),
                        "more_legs": lambda row: _largest(_listed(row), LEGS.get)}


def test_same_seed_same_rows_different_seed_different_rows():
    assert generate_rows(60, seed=1) == generate_rows(60, seed=1)
    assert generate_rows(60, seed=1) != generate_rows(60, seed=2)


def test_every_reasoning_family_has_an_answer_check():
    assert set(ANSWER_FROM_QUESTION) == set(REASONING_FAMILIES) <= set(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_family_rows_are_valid(family):
    for row in generate_rows(80, seed=3, families=[family]):
        fields = {"instruction", "input", "output", "category", "rationale", "answer"}
        generator_fields = ({"valid_outputs"} if family in MULTI_ANSWER_FAMILIES else set()) | (
            {"facts"} if family in FACT_FAMILIES else set())
        assert set(row) == fields | generator_fields
        assert row["category"] == family and row["instruction"] and row["output"]
        assert 4 <= len(row["output"].split()) <= 40
        assert "\n" not in "".join(row[field] for field in fields)
        if family in REASONING_FAMILIES:
            assert row["rationale"] and row["answer"] == ANSWER_FROM_QUESTION[family](row)
            # chain of thought: the rationale, then the answer after a marker (strict extraction reads it)
            assert row["output"] == f"{row['rationale']} So the answer is {row['answer']}."
            assert answer_correct(row["output"], row["answer"], strict=True)
        else:
            assert row["rationale"] == row["answer"] == ""


def test_multi_answer_rows_list_every_valid_answer():
    rows = generate_rows(60, seed=4, families=list(MULTI_ANSWER_FAMILIES))
    assert all(row["output"] in row["valid_outputs"] and len(set(row["valid_outputs"])) >= 2 for row in rows)
    # the draw is uniform over the valid answers, so the training data covers them
    by_prompt = {}
    for row in generate_rows(2000, seed=5, families=list(MULTI_ANSWER_FAMILIES)):
        by_prompt.setdefault(row["instruction"], (set(), row["valid_outputs"]))[0].add(row["output"])
    assert all(seen == set(valid) for seen, valid in by_prompt.values())


def test_both_prompt_templates_occur():
    assert {bool(row["input"]) for row in generate_rows(60, seed=0)} == {True, False}


def test_distinct_from_excludes_known_compositions_and_repeats():
    single_answer = [family for family in FAMILIES if family not in MULTI_ANSWER_FAMILIES]
    known = {composition_key(row) for row in generate_rows(200, seed=0)}
    rows = generate_rows(100, seed=1, families=single_answer, distinct_from=known)
    keys = [composition_key(row) for row in rows]
    assert len(set(keys)) == len(keys) and not set(keys) & known
    # a reasoning row's composition is the set of animals it names, whatever their order or wording
    reasoning = [row for row in rows if row["category"] in REASONING_FAMILIES]
    assert all(composition_key(row) == (row["category"], frozenset(_listed(row))) for row in reasoning)


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
    assert all(isinstance(row["output"], str) and "valid_outputs" not in row for row in raw)
    single = [row for row in test if row["category"] not in MULTI_ANSWER_FAMILIES]
    test_keys = {prompt_key(row) for row in single}
    assert len(test_keys) == len(single) and not test_keys & {prompt_key(row) for row in raw}
    multi = [row for row in test if row["category"] in MULTI_ANSWER_FAMILIES]
    assert multi and all(isinstance(row["output"], list) and len(row["output"]) >= 2 for row in multi)


def _assert_held_out(train: list[dict], held_out: list[dict]) -> None:
    """No held-out reasoning row names the same SET of animals as a training row of its family."""
    for family in REASONING_FAMILIES:
        seen = {frozenset(_listed(row)) for row in train if row["category"] == family}
        rows = [row for row in held_out if row["category"] == family]
        assert rows and not [row["instruction"] for row in rows if frozenset(_listed(row)) in seen]


def test_reasoning_test_questions_are_compositions_unseen_in_training(built):
    _, _, paths = built
    raw, test = _jsonl(paths["data"] / "raw.jsonl"), _jsonl(paths["data"] / "valid.jsonl")
    dev, train = raw[:SIZES["n_dev"]], raw[SIZES["n_dev"]:]
    _assert_held_out(train, test)
    _assert_held_out(train, dev)
    _assert_held_out(dev, test)


def test_default_dataset_tests_unseen_compositions_of_facts_seen_in_training(tmp_path):
    """At the default sizes: ≥ 500 reasoning test rows, none naming a training row's set of animals
    (of its family), and every fact a test rationale recalls is stated in some training row."""
    paths = write_default_dataset(tmp_path)
    raw, test = _jsonl(paths["raw"]), _jsonl(paths["valid"])
    dev, train = raw[:200], raw[200:]
    assert len(train) == 3000 and sum(row["category"] in REASONING_FAMILIES for row in test) >= 500
    _assert_held_out(train, test)
    _assert_held_out(train + test, dev)
    stated = {sentence for row in train for sentence in re.findall(r"[^.]+\.", row["output"])}
    recalled = {sentence for row in test for sentence in re.findall(r"[^.]+\.", row["rationale"])}
    assert recalled and not {sentence.strip() for sentence in recalled} - {sentence.strip() for sentence in stated}


def test_eval_rows_carry_what_scoring_needs(built):
    """Label references, answer options and the world's facts travel in the test rows, so
    evaluation needs no generator; the gold output of a fact-stating row states exactly its facts."""
    _, _, paths = built
    test = _jsonl(paths["data"] / "valid.jsonl")
    for row in test:
        if row["category"] in REASONING_FAMILIES:
            assert row["label_output"] == f"The answer is {row['answer']}."
            assert row["choices"] == _listed(row) and row["answer"] in row["choices"]
        else:
            assert row["label_output"] == row["output"] and "choices" not in row
        assert ("facts" in row) == (row["category"] in FACT_FAMILIES)
    checked = [row for row in test if "facts" in row]
    assert {row["category"] for row in checked} == set(FACT_FAMILIES)
    gold = fact_scores([row["output"] for row in checked], [row["facts"] for row in checked])
    assert gold == {"fact_precision": 100.0, "fact_recall": 100.0, "fact_f1": 100.0}


def test_pretraining_corpus_holds_no_task_text(built):
    """MiniLLM's pretraining term must not be extra supervision: no instruction, input, gold
    output, rationale or answer sentence of any split occurs in the corpus."""
    _, _, paths = built
    corpus = (paths["data"] / "pretrain.txt").read_text(encoding="utf-8")
    assert len(corpus.splitlines()) == SIZES["n_pretrain"]
    rows = _jsonl(paths["data"] / "raw.jsonl") + _jsonl(paths["data"] / "valid.jsonl")
    texts = set()
    for row in rows:
        outputs = row["output"] if isinstance(row["output"], list) else [row["output"]]
        texts.update(text for text in (row["instruction"], row["input"], row["rationale"], *outputs) if text)
        # every sentence of an output or rationale (a describe answer is 2-4 fact sentences)
        texts.update(sentence + "." for text in (row["rationale"], *outputs)
                     for sentence in text.split(". ") if sentence.strip(". "))
    leaked = sorted(text for text in texts if text in corpus)
    assert not leaked, leaked[:5]


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
    shapes = {"teacher": builder.ModelShape(2, 2, 32), "student": builder.ModelShape(1, 1, 16)}
    builder.build_default(root, seed=0, vocab_size=600, n_positions=128, **shapes, **SIZES)
    assert capsys.readouterr().out.count("skipped") == len(paths)
    assert before == {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}
    # a kept model of another shape (an earlier default) is refused, not silently used
    with pytest.raises(ValueError, match=r"1 layers × 1 heads × 16 wide, an earlier default; this one is 2 × 2 × 128"):
        builder.build_default(root, seed=0, vocab_size=600, n_positions=128, teacher=shapes["teacher"], **SIZES)
    assert before == {path: path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def test_random_model_tool_draws_a_seeded_init_of_any_config(built, tmp_path):
    _, _, paths = built
    make = load_tool("make_random_model")
    outs = {name: tmp_path / name for name in ("a", "b", "c")}
    for name, seed in (("a", 20), ("b", 20), ("c", 30)):
        assert make.main(["--config", str(paths["student"]), "--tokenizer", str(paths["tokenizer"]),
                          "--seed", str(seed), "--out", str(outs[name])]) == 0
    weights = {name: AutoModelForCausalLM.from_pretrained(out, local_files_only=True).transformer.wte.weight
               for name, out in outs.items()}
    assert torch.equal(weights["a"], weights["b"]) and not torch.equal(weights["a"], weights["c"])
    tokenizer = AutoTokenizer.from_pretrained(outs["a"], local_files_only=True)  # the tokenizer travels along
    assert weights["a"].shape[0] == len(tokenizer)
    assert make.main(["--config", str(paths["student"]), "--tokenizer", str(paths["tokenizer"]),
                      "--out", str(outs["a"])]) == 1  # an existing folder is refused


def test_know_nothing_answers_state_no_fact_and_answer_nothing_right(built):
    """tools/check_metrics.py's answers that ignore the question: the template (world phrases
    blanked) and the echoed question state no fact and answer no reasoning row; gold scores 100."""
    _, _, paths = built
    checker = load_tool("check_metrics")
    eval_set = checker.load_eval_set(paths["data"].parent, paths["data"].name)
    scores = {name: checker.score(eval_set, texts) for name, texts in checker.trivial_answers(eval_set).items()}
    gold = scores.pop("gold output")
    assert (gold["fact_f1_mean"], gold["accuracy_strict"], gold["validity_mean"], gold["rougeL_mean"]) == (100,) * 4
    for name in ("template (world phrases blanked)", "question echoed"):
        assert (scores[name]["fact_f1_mean"], scores[name]["accuracy_strict"], scores[name]["validity_mean"]) == (0,) * 3
    assert scores["template (world phrases blanked)"]["rougeL_mean"] > 50  # Rouge-L rewards the form alone
