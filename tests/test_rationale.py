"""Rationale data for step-by-step distillation: the chain-of-thought parser on the real PaLM
outputs of the DSS release, the converters, answer accuracy, and the import / generation tools."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from world import REPO, SHARED_DATA, load_tool, run_entrypoint

from minillm.arithmetic import evaluate_expression
from minillm.data.rationale import (
    ROW_FIELDS,
    FieldError,
    ParsedChainOfThought,
    ParseStats,
    convert_cqa_row,
    convert_gsm8k_row,
    convert_svamp_row,
    fill_template,
    parse_chain_of_thought,
    sidecar_path,
    split_gsm8k_solution,
)
from minillm.data.synthetic import write_default_dataset
from minillm.data.templates import TASK_PREFIXES, build_task_prompt
from minillm.metrics import (
    answer_accuracy,
    answer_correct,
    extract_answer,
    format_number,
    predicted_number,
)

DSS = SHARED_DATA / "dss"
GSM8K = SHARED_DATA / "gsm8k"
needs_dss = pytest.mark.skipif(not DSS.is_dir(), reason="../shared/data/dss absent: no PaLM rationales")
needs_gsm8k = pytest.mark.skipif(not GSM8K.is_dir(), reason="../shared/data/gsm8k absent")
PROMPTS = REPO / "prompts" / "rationales"

importer = load_tool("import_rationales")
generator = load_tool("generate_rationales")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- parsing

def test_parse_cuts_the_rationale_at_the_first_marker_and_the_label_at_the_next_question():
    text = ("Tom has 3 + 4 = 7. So the answer is 7.\nThe answer is 8.\n\nQ: Another question?\n"
            "A: Some rationale. The answer is 5.")
    assert parse_chain_of_thought(text) == ParsedChainOfThought("Tom has 3 + 4 = 7.", "7")
    assert parse_chain_of_thought("It is red. answer: blue Q: next").label == "blue"  # case-insensitive, inline Q:
    assert parse_chain_of_thought("Reasons. The answer is 2.\n\nQ").label == "2"  # cut mid-word


@pytest.mark.parametrize("text, reason", [
    ("   \n", "empty_output"),
    ("Some reasoning without a conclusion.", "no_marker"),
    ("No answer here.\n\nQ: invented?\nA: Because. The answer is 3.", "marker_only_in_next_question"),
    ("The answer is 4.", "empty_rationale"),
    ("Because of reasons. The answer is .\nQ: next", "empty_label"),
])
def test_parse_failures_name_their_reason(text, reason):
    parsed = parse_chain_of_thought(text)
    assert not parsed.ok and parsed.failure == reason and parsed.rationale == parsed.label == ""


def test_parse_stats_count_reasons_and_serialise():
    stats = ParseStats(max_examples=1)
    stats.record("a", "x", None, teacher_correct=True)
    stats.record("b", "y" * 1000, "no_marker")
    stats.record("c", "z", "no_marker")
    stats.record("d", "w", "empty_label")
    data = json.loads(json.dumps(stats.to_json()))
    assert data["failures"] == {"no_marker": 2, "empty_label": 1} and data["failed"] == 3 and data["total"] == 4
    assert data["failure_rate"] == 0.75 and data["teacher_label_accuracy"] == 100.0
    assert len(data["examples"]) == 1 and data["examples"][0]["id"] == "b" and len(data["examples"][0]["text"]) < 400
    assert stats.summary() == "failure rate 75.00% (3 of 4 outputs): no_marker 2, empty_label 1"


@needs_dss
def test_known_palm_outputs_parse_exactly():
    cqa, _ = importer.read_llm_outputs(DSS / "cqa" / "llm", "train")
    svamp, _ = importer.read_llm_outputs(DSS / "svamp" / "llm", "train")
    assert parse_chain_of_thought(cqa[0]) == ParsedChainOfThought(
        "The answer must be something that has to do with the above problem. Of the above choices, only math "
        "problem has to do with the above problem.", "(d) math problem")
    assert parse_chain_of_thought(cqa[16]).label == "either (a) aquarium or (e) pond"  # not one choice
    assert parse_chain_of_thought(svamp[0]).rationale == (
        "Luke scored 84 points after 2 rounds. So he scored 84 points in 2 rounds. 84 / 2 = 42.")
    assert parse_chain_of_thought(svamp[0]).label == "(84 / 2)"
    # the hallucinated next question was cut right after its "Q"
    assert parse_chain_of_thought(svamp[747]).label == "((15 * 19) + (62 * 19))"
    assert parse_chain_of_thought(svamp[65]).failure == "no_marker"


@needs_dss
@pytest.mark.parametrize("source, split, rows_written, failures, teacher_accuracy", [
    ("cqa", "train", 9454, {"label_not_a_choice": 287}, 77.5756),
    ("cqa", "test", 1221, {"label_not_a_choice": 25}, 79.8495),
    ("svamp", "train", 766, {"label_not_an_expression": 23, "no_marker": 11}, 77.5457),
    ("svamp", "test", 200, {"label_not_an_expression": 5, "no_marker": 2}, 80.3109),
])
def test_palm_failure_counts_on_the_real_release(source, split, rows_written, failures, teacher_accuracy):
    """Measured once; a change here means the parser changed (CQA train 2.95%, test 2.05%;
    SVAMP train 4.25%, test 3.50%). Test rows are kept (without a rationale), train rows dropped."""
    rows, stats, parse, _ = importer.import_rows(source, DSS / source, split, "gold")
    assert len(rows) == rows_written and dict(parse.failures) == failures
    assert stats["parse"]["teacher_label_accuracy"] == teacher_accuracy
    assert stats["rows_without_rationale"] == (sum(failures.values()) if split == "test" else 0)
    assert all(list(row) == list(ROW_FIELDS) for row in rows)


# ---------------------------------------------------------------- converters

CQA_RECORD = {"id": "q1", "question": "Where do you keep milk cold?",
              "choices": ["oven", "fridge", "garden", "car", "desk"], "answer": "fridge"}


def test_cqa_rows_take_gold_or_teacher_labels():
    output = "Milk must be kept cold. So the answer is (e) desk.\n\nQ: next"
    gold = convert_cqa_row(CQA_RECORD, output, "gold")
    assert gold.row["input"] == "(a) oven\n(b) fridge\n(c) garden\n(d) car\n(e) desk"
    assert (gold.row["output"], gold.row["answer"], gold.row["label_source"]) == ("fridge", "fridge", "gold")
    assert gold.row["rationale"] == "Milk must be kept cold." and gold.row["rationale_source"] == "palm-540b"
    assert gold.teacher_correct is False
    teacher = convert_cqa_row(CQA_RECORD, output, "teacher").row
    assert (teacher["output"], teacher["answer"], teacher["gold_answer"]) == ("desk", "desk", "fridge")
    failed = "So cold. So the answer is either (b) fridge or (d) car."
    assert convert_cqa_row(CQA_RECORD, failed, "gold").row is None  # training rows are dropped
    kept = convert_cqa_row(CQA_RECORD, failed, "gold", keep_failed=True)
    assert kept.failure == "label_not_a_choice" and kept.row["rationale"] == "" and kept.row["output"] == "fridge"
    assert kept.row["rationale_source"] == ""
    with pytest.raises(ValueError, match="gold labels"):
        convert_cqa_row(CQA_RECORD, failed, "teacher", keep_failed=True)
    with pytest.raises(FieldError, match="'choices'"):
        convert_cqa_row({**CQA_RECORD, "choices": "oven"}, output)


def test_svamp_rows_answer_with_the_equation_value():
    record = {"input": "Luke scored 84 points in 2 rounds.\nHow many per round?", "label": "( 84.0 / 2.0 )"}
    row = convert_svamp_row(record, "s0", "84 / 2 = 42. The answer is (84 / 2).", "teacher").row
    assert (row["output"], row["answer"], row["gold_answer"]) == ("(84 / 2)", "42", "42")
    gold = convert_svamp_row(record, "s0", "Half of 84. The answer is (84 / 3).", "gold")
    assert (gold.row["output"], gold.row["answer"], gold.teacher_correct) == ("( 84.0 / 2.0 )", "42", False)
    assert convert_svamp_row(record, "s0", "So. The answer is (x - 2).").failure == "label_not_an_expression"
    with pytest.raises(FieldError, match="'label'.*never closed"):
        convert_svamp_row({**record, "label": "( 84.0 / 2.0"}, "s0", "")


def test_gsm8k_solution_drops_calculator_annotations_and_normalises_the_answer():
    solution = "He pays 5*200 = $<<5*200=1000>>1,000.\nThen 1000+80 = <<1000+80=1080>>1080 in all.\n#### 1,080"
    assert split_gsm8k_solution(solution) == ("He pays 5*200 = $1,000.\nThen 1000+80 = 1080 in all.", "1080")
    with pytest.raises(FieldError, match="exactly one"):
        split_gsm8k_solution("no final line")
    with pytest.raises(FieldError, match="not closed"):
        split_gsm8k_solution("He pays <<5*200=1000 1000.\n#### 1000")
    with pytest.raises(FieldError, match="expected a number"):
        split_gsm8k_solution("Some text.\n#### seven")


@needs_gsm8k
def test_gsm8k_known_row():
    first = json.loads((GSM8K / "train.jsonl").read_text().splitlines()[0])
    row = convert_gsm8k_row(first, "gsm8k-train-0")
    assert row["rationale"] == ("Natalia sold 48/2 = 24 clips in May.\n"
                                "Natalia sold 48+24 = 72 clips altogether in April and May.")
    assert (row["output"], row["answer"], row["rationale_source"]) == ("72", "72", "dataset")
    assert row["instruction"].startswith("Natalia sold clips to 48 of her friends")


# ---------------------------------------------------------------- metrics

@pytest.mark.parametrize("text, value", [
    ("( 84.0 / 2.0 )", 42.0), ("((15 * 19) + (62 * 19))", 1463.0), ("-(2 + 3) * 4", -20.0),
    ("1 - -2", 3.0), (".5 * 4", 2.0), ("3 - 2 - 1", 0.0), ("8 / 4 / 2", 1.0), ("7", 7.0),
])
def test_evaluate_expression(text, value):
    assert evaluate_expression(text) == value


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("(1 + 2", "'\\(' at position 0 is never closed"), ("1 + 2)", "no matching"),
    ("2 x 3", "unexpected character 'x' at position 2"), ("1 / (2 - 2)", "division by zero"),
    ("1 +", "ends where a number"), ("2 3", "unexpected '3'"), ("()", "expected a number"),
    ("1,000 + 2", "unexpected character ','"), ("__import__('os')", "unexpected character '_'"),
    ("(" * 150 + "1" + ")" * 150, "nested deeper"), ("9" * 400, "finite"),
])
def test_evaluate_expression_refuses_malformed_input(text, message):
    with pytest.raises(ValueError, match=message):
        evaluate_expression(text)


@pytest.mark.parametrize("prediction, answer, correct", [
    ("The answer is 1,000.", "1000", True),
    ("So she pays $5.", "5", True),
    ("The answer is 5.0", "5", True),
    ("So the answer is (84 / 2).", "42", True),
    ("Mia has 13 coins now.", "13", True),
    ("She had 10, gave 3 and now has 7. The answer is 7 apples.\n\nQ: x? A: The answer is 9.", "7", True),
    ("The answer is 12 because 3 * 4 = 12 and not 15", "15", False),  # the number after the marker counts
    ("The answer is twelve.", "12", False),
    ("So the answer is (b) Bank.", "bank", True),
    ("(d) math problem", "math problem", True),
    ("So the answer is (c) train station.", "bridge", False),
    ("2.5", "2.5", True), ("0.333333", "0.333333", True), ("(1 / 3)", "0.333333", True),
])
def test_answer_correct(prediction, answer, correct):
    assert answer_correct(prediction, answer) is correct


def test_extract_answer_and_predicted_number():
    assert extract_answer("So the answer is (84 / 2).") == "42"
    assert extract_answer("The answer is $1,000.") == "1000"
    assert extract_answer("So the answer is (b) bank.\n\nQ: next") == "bank"
    assert extract_answer("10-5") == "5" and predicted_number("10-5 gives 5") == 5.0
    assert predicted_number("x = -3") == -3.0 and predicted_number("no number") is None
    assert [format_number(v) for v in (2.5, 1 / 3, -0.0, 42.0000001)] == ["2.5", "0.333333", "0", "42"]


def test_answer_accuracy_skips_rows_without_an_answer():
    assert answer_accuracy(["The answer is 5", "anything", "3 apples"], ["5", "", "4"]) == 50.0
    with pytest.raises(ValueError, match="2 predictions but 1 answers"):
        answer_accuracy(["a", "b"], ["1"])
    with pytest.raises(ValueError, match="no row"):
        answer_accuracy(["a"], [""])


# ---------------------------------------------------------------- import tool

def write_fake_cqa(folder: Path, n_rows: int = 3, outputs_per_file: tuple[int, ...] = (2, 1)) -> Path:
    """A DSS-release-shaped CQA folder: cqa_train.json + llm/train_CoT_<i>.json."""
    (folder / "llm").mkdir(parents=True)
    records = [{**CQA_RECORD, "id": f"q{i}"} for i in range(n_rows)]
    (folder / "cqa_train.json").write_text("".join(json.dumps(r) + "\n" for r in records))
    outputs = ["Cold keeps milk. So the answer is (b) fridge.\n\nQ: x", "Hm.", "Ovens heat. So the answer is (a) oven."]
    start = 0
    for index, count in enumerate(outputs_per_file):
        (folder / "llm" / f"train_CoT_{index}.json").write_text(json.dumps(outputs[start:start + count]))
        start += count
    return folder


def test_import_tool_writes_rows_and_stats_and_prints_the_failure_rate(tmp_path, capsys):
    folder = write_fake_cqa(tmp_path / "cqa")
    out = tmp_path / "out" / "cqa_train.jsonl"
    assert importer.main(["--source", "cqa", "--input", str(folder), "--labels", "teacher", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "failure rate 33.33% (1 of 3 outputs): no_marker 1" in printed
    rows = read_jsonl(out)
    assert [(row["id"], row["output"], row["gold_answer"]) for row in rows] == [("q0", "fridge", "fridge"),
                                                                                ("q2", "oven", "fridge")]
    stats = json.loads(sidecar_path(out, "stats").read_text())
    assert (stats["rows_read"], stats["rows_written"], stats["rows_dropped"]) == (3, 2, 1)
    assert stats["parse"]["failures"] == {"no_marker": 1} and stats["parse"]["teacher_label_accuracy"] == 50.0


def test_import_tool_converts_synthetic_rows(tmp_path, capsys):
    paths = write_default_dataset(tmp_path / "tiny", seed=1, n_train=12, n_dev=6, n_test=6, n_pretrain=1)
    out = tmp_path / "synthetic.jsonl"
    assert importer.main(["--source", "synthetic", "--input", str(tmp_path / "tiny"), "--out", str(out)]) == 0
    assert "failure rate: n/a" in capsys.readouterr().out
    rows, raw = read_jsonl(out), read_jsonl(paths["raw"])
    assert [row["rationale"] for row in rows] == [r["rationale"] for r in raw]
    assert {row["rationale_source"] for row in rows} == {"dataset", ""}  # open-ended families have none
    assert all(row["answer"] == row["gold_answer"] and row["label_source"] == "gold" for row in rows)
    # the label task states a reasoning row's answer alone; its reasoning is the rationale task's
    for row, gold in zip(rows, raw):
        assert row["output"] == (f"The answer is {gold['answer']}." if gold["rationale"] else gold["output"])
    test_rows = read_jsonl(paths["valid"])  # multi-answer test rows list every valid output
    assert importer.main(["--source", "synthetic", "--input", str(tmp_path / "tiny"), "--split", "test",
                          "--out", str(tmp_path / "test.jsonl")]) == 0
    assert [row["output"] for row in read_jsonl(tmp_path / "test.jsonl")] == [
        r["output"][0] if isinstance(r["output"], list) else r["output"] if not r["rationale"]
        else f"The answer is {r['answer']}." for r in test_rows]


deriver = load_tool("derive_rationale_rows")


def test_derived_rows_put_gold_labels_back_and_write_chain_of_thought(tmp_path):
    teacher = {"instruction": "q", "input": "", "output": "The answer is fox.", "rationale": "The fox is small.",
               "answer": "fox", "gold_answer": "owl", "gold_output": "The answer is owl.", "label_source": "teacher"}
    gold = {**teacher, "output": "The answer is owl.", "answer": "owl", "label_source": "gold"}
    open_ended = {**gold, "rationale": "", "answer": "", "gold_answer": "", "output": "A fox is an animal."}
    explained = {**open_ended, "rationale": "Foxes are animals."}  # e.g. a dolly row with a teacher rationale
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in (teacher, gold, open_ended, explained)))
    assert deriver.main(["--input", str(source), "--out", str(tmp_path / "gold.jsonl"), "--labels", "gold"]) == 0
    relabelled = read_jsonl(tmp_path / "gold.jsonl")
    assert relabelled[0] == {**teacher, "output": "The answer is owl.", "answer": "owl", "label_source": "gold"}
    assert relabelled[1:] == [gold, open_ended, explained]  # rows that are gold already stay as they are
    assert deriver.main(["--input", str(source), "--out", str(tmp_path / "cot.jsonl"), "--chain-of-thought"]) == 0
    assert [row["rationale"] for row in read_jsonl(tmp_path / "cot.jsonl")] == [
        "The fox is small. So the answer is fox.", "The fox is small. So the answer is owl.", "",
        "Foxes are animals. So the answer is A fox is an animal."]


def test_derived_rows_name_the_line_of_a_row_without_its_gold_label(tmp_path, capsys):
    source = tmp_path / "rows.jsonl"
    source.write_text(json.dumps({"instruction": "q", "output": "x", "label_source": "teacher"}) + "\n")
    assert deriver.main(["--input", str(source), "--out", str(tmp_path / "out.jsonl"), "--labels", "gold"]) == 1
    assert "rows.jsonl:1: field 'gold_answer': missing" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


def corrupt_split_line(folder: Path) -> None:
    lines = (folder / "cqa_train.json").read_text().splitlines()
    (folder / "cqa_train.json").write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")


def drop_field(folder: Path) -> None:
    lines = (folder / "cqa_train.json").read_text().splitlines()
    record = json.loads(lines[1])
    del record["question"]
    (folder / "cqa_train.json").write_text("\n".join([lines[0], json.dumps(record), *lines[2:]]) + "\n")


@pytest.mark.parametrize("damage, message", [
    (corrupt_split_line, "cqa_train.json:2: malformed JSON"),
    (drop_field, "cqa_train.json:2: field 'question': missing"),
    (lambda folder: (folder / "llm" / "train_CoT_1.json").unlink(), "cqa_train.json:3: no PaLM output"),
    (lambda folder: (folder / "llm" / "train_CoT_0.json").write_text("[\"a\", 3]"), "train_CoT_0.json:1: field '[1]'"),
    (lambda folder: (folder / "llm" / "train_CoT_0.json").unlink(), "train_CoT_0.json is missing"),
    (lambda folder: (folder / "llm" / "train_CoT_1.json").write_text('["x", "y"]'), "do not belong to this split"),
])
def test_import_tool_bad_input_is_a_located_error_and_writes_nothing(tmp_path, capsys, damage, message):
    folder = write_fake_cqa(tmp_path / "cqa")
    damage(folder)
    out = tmp_path / "out.jsonl"
    assert importer.main(["--source", "cqa", "--input", str(folder), "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists() and not sidecar_path(out, "stats").exists()


# ---------------------------------------------------------------- generation tool

def test_templates_fill_the_task_prompts():
    body = (PROMPTS / "dss_rationale.txt").read_text()[:-1]  # the file's final newline is not part of it
    assert fill_template(body, "Add 2 and 3.", "") == build_task_prompt(TASK_PREFIXES["rationale"], "Add 2 and 3.", "")
    label = (PROMPTS / "dss_label.txt").read_text()[:-1]
    assert fill_template(label, "Sum?", "2, 3") == build_task_prompt(TASK_PREFIXES["label"], "Sum?", "2, 3")
    fewshot = (PROMPTS / "fewshot_cot.txt").read_text()[:-1]
    assert fill_template(fewshot, "What is {x}?", "").endswith("\nQ: What is {x}?\nA:")
    assert fill_template(fewshot, "Pick one.", "(a) x\n(b) y").endswith("\nQ: Pick one.\n(a) x\n(b) y\nA:")
    with pytest.raises(ValueError, match="placeholders"):
        fill_template("no placeholder", "a", "")


def test_teacher_rows_drop_and_count_failed_generations():
    rows = [{"instruction": f"q{i}", "input": "", "output": "gold", "answer": "4", "gold_answer": "4", "id": f"r{i}",
             "rationale": "", "rationale_source": "", "label_source": "gold"} for i in range(3)]
    kept, stats, _ = generator.teacher_rows(rows, ["2 + 2 = 4.", "", "Two and two."], ["The answer is 4.", "4", " "],
                                            "teacher-model")
    assert [row["id"] for row in kept] == ["r0"] and dict(stats.failures) == {"empty_rationale": 1, "empty_label": 1}
    assert kept[0]["output"] == "The answer is 4." and kept[0]["answer"] == "4" and kept[0]["gold_output"] == "gold"
    assert (kept[0]["rationale_source"], kept[0]["label_source"]) == ("teacher-model", "teacher")
    kept, stats, consistency = generator.teacher_rows(rows, ["2 + 2 = 4. The answer is 5.", "No idea.", ""],
                                                      [None] * 3, "m")
    assert [(row["rationale"], row["answer"], row["gold_answer"]) for row in kept] == [("2 + 2 = 4.", "5", "4")]
    assert dict(stats.failures) == {"no_marker": 1, "empty_output": 1} and stats.teacher_correct == 0
    # one pass: the label is the one the chain of thought concludes, so only parse failures are inconsistent
    assert consistency == {"rationale_rows": 3, "consistent_rows": 1, "consistency_rate": 33.3333,
                           "teacher_label_accuracy": 0.0}


def test_one_pass_labels_take_the_dataset_style_and_open_ended_rows_keep_their_label_pass():
    rows = [{"instruction": f"q{i}", "input": "", "output": "gold", "answer": answer, "gold_answer": answer,
             "id": f"r{i}", "rationale": "", "rationale_source": "", "label_source": "gold"}
            for i, answer in enumerate(["7", "7", ""])]
    kept, _, consistency = generator.teacher_rows(
        rows, ["3 + 4 = 7. So the answer is 7.", "3 + 4 = 8. So the answer is 8.", None],
        [None, None, "A fox is an animal."], "m", cot_label_format="The answer is {label}.")
    assert [(row["rationale"], row["output"], row["answer"]) for row in kept] == [
        ("3 + 4 = 7.", "The answer is 7.", "7"), ("3 + 4 = 8.", "The answer is 8.", "8"), ("", "A fox is an animal.", "")]
    assert consistency["consistency_rate"] == 100.0 and consistency["teacher_label_accuracy"] == 50.0


def test_two_passes_count_and_filter_labels_that_contradict_the_rationale():
    rows = [{"instruction": f"q{i}", "input": "", "output": "gold", "answer": "7", "gold_answer": "7", "id": f"r{i}",
             "rationale": "", "rationale_source": "", "label_source": "gold"} for i in range(3)]
    rationales = ["3 + 4 = 7. So the answer is 7.", "3 + 4 = 7. So the answer is 7.", "3 + 4 makes seven."]
    labels = ["The answer is 7.", "The answer is 9.", "The answer is 7."]
    kept, _, consistency = generator.teacher_rows(rows, rationales, labels, "m")
    assert len(kept) == 3 and consistency["consistent_rows"] == 1 and consistency["consistency_rate"] == 33.3333
    assert kept[0]["rationale"] == "3 + 4 = 7."  # the rationale's own conclusion is not part of the rationale
    kept, _, _ = generator.teacher_rows(rows, rationales, labels, "m", consistency_filter=True)
    assert [row["id"] for row in kept] == ["r0"]


def run_generation(world, tmp_path: Path, *template_args: str) -> tuple[list[dict], dict, dict, list[dict]]:
    rows = read_jsonl(world.data / "raw.jsonl")[:24]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "teacher.jsonl"
    run_entrypoint(["tools/generate_rationales.py", "--model-path", str(world.teacher), "--input", str(source),
                    "--out", str(out), "--dev-num", "4", "--max-prompt-length", "96", "--max-new-tokens", "16",
                    *template_args])
    stats = json.loads(sidecar_path(out, "stats").read_text())
    meta = json.loads(sidecar_path(out, "meta").read_text())
    return read_jsonl(out), stats, meta, rows


def check_template_recorded(meta: dict, key: str, path: Path) -> None:
    recorded = meta[key]
    assert recorded["path"] == str(path) and recorded["text"] == path.read_text()
    assert recorded["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_generate_rationales_two_task_templates(world, tmp_path):
    rationale, label = PROMPTS / "dss_rationale.txt", PROMPTS / "dss_label.txt"
    out, stats, meta, rows = run_generation(world, tmp_path, "--template", str(rationale),
                                            "--label-template", str(label))
    check_template_recorded(meta, "template", rationale)
    check_template_recorded(meta, "label_template", label)
    assert meta["mode"] == "two_task" and meta["model"] == str(world.teacher)
    assert [row["output"] for row in out[:4]] == [row["output"] for row in rows[:4]]  # validation stays gold
    teacher = out[4:]
    assert stats["teacher_rows_written"] == len(teacher) and stats["rows_dropped"] == stats["parse"]["failed"]
    assert len(teacher) + stats["rows_dropped"] == 20 == stats["parse"]["total"]
    assert all(row["label_source"] == "teacher" and row["rationale_source"] == str(world.teacher)
               and row["rationale"] and row["output"] for row in teacher)
    gold_by_prompt = {(row["instruction"], row["input"]): row for row in rows}
    assert all(row["gold_output"] == gold_by_prompt[(row["instruction"], row["input"])]["output"] for row in teacher)


@pytest.mark.slow
def test_generate_rationales_fewshot_template_counts_parse_failures(world, tmp_path):
    template = PROMPTS / "fewshot_cot.txt"
    out, stats, meta, _ = run_generation(world, tmp_path, "--template", str(template), "--max-failure-rate", "100")
    check_template_recorded(meta, "template", template)
    assert meta["mode"] == "chain_of_thought" and "label_template" not in meta
    assert meta["truncated_prompts"]["template"] == 20  # few-shot prompts exceed 96 tokens
    # an untrained toy model hardly ever writes "The answer is": its failures are dropped and counted
    parse = stats["parse"]
    assert parse["total"] == 20 and 0 < parse["failed"] == stats["rows_dropped"] == sum(parse["failures"].values())
    assert parse["examples"] and len(out) == 4 + stats["teacher_rows_written"] == 4 + 20 - parse["failed"]


@pytest.mark.slow
def test_generate_rationales_fails_when_too_few_rows_parse(world, tmp_path):
    """Issue 17, item 5: an untrained teacher that writes no parsable chain of thought fails its
    stage at once, naming the teacher, the template and the stats file, and writes no rows."""
    source, out, template = tmp_path / "rows.jsonl", tmp_path / "teacher.jsonl", PROMPTS / "fewshot_cot.txt"
    source.write_text("".join(json.dumps(row) + "\n" for row in read_jsonl(world.data / "raw.jsonl")[:12]))
    result = subprocess.run([sys.executable, "tools/generate_rationales.py", "--model-path", str(world.student),
                             "--input", str(source), "--out", str(out), "--template", str(template),
                             "--max-prompt-length", "96", "--max-new-tokens", "8"],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"})
    stats_path = sidecar_path(out, "stats")
    assert result.returncode == 1, result.stdout + result.stderr
    assert not out.exists() and json.loads(stats_path.read_text())["rows_dropped"] > 6
    for named in (f"teacher {world.student}", f"template {template}", f"see {stats_path}", "--max-failure-rate 50",
                  "MAX_RATIONALE_FAILURE_RATE"):
        assert named in result.stdout, named


@pytest.mark.slow
def test_generate_rationales_only_for_rows_with_a_rationale(world, tmp_path):
    out, stats, meta, rows = run_generation(world, tmp_path, "--template", str(PROMPTS / "dss_rationale.txt"),
                                            "--label-template", str(PROMPTS / "dss_label.txt"),
                                            "--rationale-rows", "with-rationale")
    assert meta["rationale_rows"] == "with-rationale"
    gold_by_prompt = {(row["instruction"], row["input"]): row for row in rows}
    teacher = out[4:]
    assert teacher and all(row["label_source"] == "teacher" and row["output"] for row in teacher)
    # open-ended questions get a teacher label but no rationale; reasoning questions get both
    assert all(bool(row["rationale"]) == bool(gold_by_prompt[(row["instruction"], row["input"])]["rationale"])
               for row in teacher)
    assert {bool(row["rationale"]) for row in teacher} == {True, False}


def test_rationale_rows_with_rationale_needs_a_label_template(world, tmp_path):
    source = tmp_path / "rows.jsonl"
    source.write_text(json.dumps({"instruction": "q", "input": "", "output": "a"}) + "\n")
    assert generator.main(["--model-path", str(world.teacher), "--input", str(source), "--out", str(tmp_path / "o.jsonl"),
                           "--template", str(PROMPTS / "dss_rationale.txt"), "--rationale-rows", "with-rationale"]) == 1
    assert not (tmp_path / "o.jsonl").exists()
    assert "RANK" not in os.environ  # refused before any model or process group is set up
