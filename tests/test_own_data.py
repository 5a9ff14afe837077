"""Your own data for every arm (docs/own-models.md): GSM8K converted to a RAW_DIR whose rows carry
their step-by-step fields (tools/convert_gsm8k.py), the step-by-step rows derived from those very
rows (tools/import_rationales.py --source raw), and a separate DSS_SOURCE_INPUT checked to hold
the same questions in the same split (--same-questions-as), or refused naming the first row
that differs."""
from __future__ import annotations

import json

import pytest

from minillm.data.rationale import carries_rationales
from minillm.experiments import budget
from minillm.metrics import answer_correct
from world import SHARED_DATA, load_tool

convert = load_tool("convert_gsm8k")
importer = load_tool("import_rationales")
GSM8K = [  # GSM8K's own format: a worked solution with calculator annotations, then "#### n"
    {"question": "Natalia sold 48 clips in April and half as many in May. How many in all? ",
     "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn all 48+24 = <<48+24=72>>72 clips.\n#### 72"},
    {"question": "Weng earns $12 an hour. How much for 50 minutes?",
     "answer": "Per minute 12/60 = $<<12/60=0.2>>0.2.\nSo 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10"},
    {"question": "A shop sold 1,000 pens at $2. What did it earn?", "answer": "1000 x 2 = <<1000*2=2000>>2000\n#### 2,000"},
]


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().split("\n") if line]


@pytest.fixture
def gsm8k(tmp_path):
    write_jsonl(tmp_path / "gsm8k" / "train.jsonl", GSM8K)
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", GSM8K[:1])
    return tmp_path / "gsm8k"


def test_gsm8k_becomes_instruction_rows_that_end_with_the_answer_sentence(gsm8k, tmp_path):
    assert convert.main(["--input", str(gsm8k), "--out", str(tmp_path / "data" / "gsm8k")]) == 0
    rows = read_jsonl(tmp_path / "data" / "gsm8k" / "raw.jsonl")
    assert rows[0] == {"instruction": GSM8K[0]["question"].strip(), "input": "",
                       "output": "In May she sold 48/2 = 24 clips.\nIn all 48+24 = 72 clips.\nThe answer is 72.",
                       "rationale": "In May she sold 48/2 = 24 clips.\nIn all 48+24 = 72 clips.", "answer": "72"}
    assert [row["answer"] for row in rows] == ["72", "10", "2000"]
    assert all(answer_correct(row["output"], row["answer"], strict=True) for row in rows)  # strict accuracy reads it
    assert len(read_jsonl(tmp_path / "data" / "gsm8k" / "valid.jsonl")) == 1  # the test split: an eval set
    assert carries_rationales(rows) and not carries_rationales([{"instruction": "q", "output": "a"}])


def test_a_bad_gsm8k_row_is_named_and_nothing_is_written(tmp_path, capsys):
    write_jsonl(tmp_path / "gsm8k" / "train.jsonl", [GSM8K[0], {**GSM8K[1], "answer": "no final line"}])
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", GSM8K[:1])
    assert convert.main(["--input", str(tmp_path / "gsm8k"), "--out", str(tmp_path / "out")]) == 1
    assert "train.jsonl:2" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_step_by_step_rows_come_from_raw_dirs_own_rows_in_its_split(gsm8k, tmp_path):
    raw_dir = tmp_path / "data" / "gsm8k"
    convert.main(["--input", str(gsm8k), "--out", str(raw_dir)])
    out = tmp_path / "dss" / "raw.jsonl"
    assert importer.main(["--source", "raw", "--input", str(raw_dir), "--out", str(out),
                          "--same-questions-as", str(raw_dir / "raw.jsonl"), "--dev-num", "1"]) == 0
    rows, raw = read_jsonl(out), read_jsonl(raw_dir / "raw.jsonl")
    assert [row["instruction"] for row in rows] == [row["instruction"] for row in raw]
    assert [(row["output"], row["rationale"], row["source"]) for row in rows] == [
        (f"The answer is {row['answer']}.", row["rationale"], "raw") for row in raw]
    # GSM8K's own folder gives the same questions in the same order: accepted as DSS_SOURCE_INPUT
    assert importer.main(["--source", "gsm8k", "--input", str(gsm8k), "--out", str(tmp_path / "g.jsonl"),
                          "--same-questions-as", str(raw_dir / "raw.jsonl"), "--dev-num", "1"]) == 0


def test_a_dss_source_with_other_questions_or_another_order_is_refused_by_row(gsm8k, tmp_path, capsys):
    raw_dir = tmp_path / "data"
    write_jsonl(raw_dir / "raw.jsonl", [{"instruction": GSM8K[index]["question"], "output": "x"} for index in (0, 2, 1)])
    out = tmp_path / "g.jsonl"
    arguments = ["--source", "gsm8k", "--input", str(gsm8k), "--out", str(out),
                 "--same-questions-as", str(raw_dir / "raw.jsonl"), "--dev-num", "1"]
    assert importer.main(arguments) == 1
    error = capsys.readouterr().err
    assert f"row 2 differs: {gsm8k / 'train.jsonl'}:2 asks 'Weng earns" in error
    assert f"{raw_dir / 'raw.jsonl'}:2 asks 'A shop sold" in error and "DEV_NUM=1" in error and not out.exists()
    # only the rows that run are compared: DEV_NUM=1 and MAX_TRAIN_ROWS=0 means every row, =1 the first two
    assert importer.main([*arguments, "--dev-num", "0", "--max-train-rows", "1"]) == 0
    write_jsonl(raw_dir / "raw.jsonl", [{"instruction": GSM8K[0]["question"], "output": "x"}])
    assert importer.main(arguments) == 1
    assert "gives 3 rows" in capsys.readouterr().err


@pytest.mark.skipif(not (SHARED_DATA / "gsm8k" / "train.jsonl").is_file() or
                    not (SHARED_DATA / "tokenizers" / "qwen2").is_dir(), reason="../shared/data gsm8k / qwen2 absent")
def test_the_issues_lengths_are_refused_and_the_recipes_fit(tmp_path):
    """The issue's run (MAX_LENGTH=192, MAX_PROMPT_LENGTH=128 with the Qwen2 tokenizer) leaves 64
    new tokens for answers of ~95: refused. The recipe's 384 / 160 keeps the answer for nearly all."""
    from minillm.modeling import load_tokenizer

    for split in ("train", "test"):
        lines = (SHARED_DATA / "gsm8k" / f"{split}.jsonl").read_text().split("\n")[:300]
        (tmp_path / "source").mkdir(exist_ok=True)
        (tmp_path / "source" / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    convert.main(["--input", str(tmp_path / "source"), "--out", str(tmp_path / "gsm8k")])
    rows = read_jsonl(tmp_path / "gsm8k" / "raw.jsonl")
    tokenizer = load_tokenizer(SHARED_DATA / "tokenizers" / "qwen2")
    issue = budget.check_lengths(tokenizer, rows, budget.gold_response, "gold responses", 192, 128)
    warnings, refusals = budget.length_findings([issue])
    assert refusals and issue.share_marker_fits < 0.5 and issue.share_cut > 0.5
    for response, prefix in ((budget.gold_response, ""), (budget.chain_of_thought_response, "[rationale] ")):
        recipe = budget.check_lengths(tokenizer, rows, response, "recipe", 384, 160, prefix)
        assert recipe.share_marker_fits > 0.97 and recipe.over_max_length <= 0.02 * len(rows)
        assert not budget.length_findings([recipe])[1]
