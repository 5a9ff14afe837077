"""tools/process_data_dolly.py must reproduce MiniLLM's processed Dolly files exactly."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer

from minillm.data.indexed import IndexedDataset
from minillm.data.processing import DataFormatError, normalize_instruction_record, read_jsonl

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared/data"

# The reference templates, spelled out independently of minillm.data.templates.
NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n### Instruction:\n"
    "{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
SPLIT_ID = 65535  # the tiny tokenizer and GPT-2 both have < 65500 tokens -> uint16

ROWS = [
    {"instruction": "Name a lazy animal.", "input": "", "output": "The dog."},
    {"instruction": "Summarise the paragraph.", "input": "Alpacas live in the Andes.",
     "output": "Alpacas are Andean. ü"},
    {"instruction": "Describe the fox. " * 40, "input": "", "output": "Too long to keep."},
    {"instruction": "Answer the question using the context.", "context": "The fox is brown.",
     "response": "Brown.", "category": "closed_qa"},
    {"instruction": "Write one sentence.", "output": "Llamas jump over foxes. " * 30},
    {"instruction": "Quick task", "input": "", "output": ""},
]
MAX_PROMPT_LENGTH = 120


def load_tool():
    spec = importlib.util.spec_from_file_location(
        "process_data_dolly", REPO_ROOT / "tools/process_data_dolly.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def write_raw(directory: Path, rows: list[dict] | list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    (directory / "raw.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return directory


def run_tool(data_dir: Path, out_dir: Path, tokenizer_dir: Path, *extra: str) -> int:
    return TOOL.main([
        "--data-dir", str(data_dir),
        "--processed-data-dir", str(out_dir),
        "--model-path", str(tokenizer_dir),
        "--model-type", "tiny",
        *extra,
    ])


def expected_examples(rows: list[dict], tokenizer, max_prompt_length: int) -> list[dict]:
    """Recompute every row's tokens from the reference rules; None marks a dropped row."""
    examples = []
    for row in rows:
        instruction = row["instruction"]
        input_text = row.get("input", row.get("context", ""))
        output = row.get("output", row.get("response"))
        prompt = (WITH_INPUT if input_text else NO_INPUT).format(instruction=instruction, input=input_text)
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        if len(prompt_ids) > max_prompt_length:
            examples.append(None)
            continue
        full = tokenizer.encode(prompt + output, add_special_tokens=False) + [tokenizer.eos_token_id]
        examples.append({
            "row": {"instruction": instruction, "prompt": prompt, "input": input_text, "output": output},
            "prompt_ids": prompt_ids,
            "response_ids": full[len(prompt_ids):],
        })
    return examples


def bin_bytes(items: list[list[int]]) -> bytes:
    return b"".join(np.asarray(item, dtype="<u2").tobytes() for item in items)


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer_dir: Path):
    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


def test_tiny_tokenizer_is_usable(tokenizer) -> None:
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id is not None
    assert len(tokenizer) < 65500
    text = "Alpacas are Andean. ü"
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text


def test_full_variant_matches_reference(tmp_path, tiny_tokenizer_dir, tokenizer, capsys) -> None:
    data_dir = write_raw(tmp_path / "data", ROWS)
    assert run_tool(data_dir, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "2",  # MiniLLM keeps ROWS[5]
                    "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--allow-empty-outputs") == 0
    out = tmp_path / "out" / "tiny"
    assert sorted(p.name for p in out.iterdir()) == [
        "data_manifest.json", "train.jsonl", "train_0.bin", "train_0.idx", "valid.jsonl", "valid_0.bin",
        "valid_0.idx",
    ]
    examples = expected_examples(ROWS, tokenizer, MAX_PROMPT_LENGTH)
    assert examples[2] is None and all(e is not None for i, e in enumerate(examples) if i != 2)
    assert len(examples[4]["response_ids"]) > MAX_PROMPT_LENGTH  # responses are never cut
    assert examples[5]["response_ids"] == [tokenizer.eos_token_id]
    for split, part in (("valid", examples[:2]), ("train", examples[2:])):
        kept = [e for e in part if e is not None]
        items = [e["prompt_ids"] + [SPLIT_ID] + e["response_ids"] for e in kept]
        assert (out / f"{split}_0.bin").read_bytes() == bin_bytes(items)
        dataset = IndexedDataset(str(out / f"{split}_0"))
        assert [dataset[i].tolist() for i in range(len(dataset))] == items
        assert (out / f"{split}.jsonl").read_text(encoding="utf-8") == "".join(
            json.dumps(e["row"]) + "\n" for e in kept
        )
    train_rows = (out / "train.jsonl").read_text().splitlines()
    assert json.loads(train_rows[0]) == {  # dolly-15k field names are mapped; key order kept
        "instruction": "Answer the question using the context.",
        "prompt": WITH_INPUT.format(instruction="Answer the question using the context.",
                                    input="The fox is brown."),
        "input": "The fox is brown.",
        "output": "Brown.",
    }
    assert "\\u00fc" in (out / "valid.jsonl").read_text()  # ensure_ascii, as json.dumps default
    report = capsys.readouterr().out
    assert "[valid] rows read 2, kept 2, dropped 0" in report
    assert "[train] rows read 4, kept 3, dropped 1" in report
    assert f"prompt longer than {MAX_PROMPT_LENGTH} tokens: 1" in report


def test_prompt_only_variant(tmp_path, tiny_tokenizer_dir, tokenizer, capsys) -> None:
    data_dir = write_raw(tmp_path / "data", ROWS)
    examples = expected_examples(ROWS, tokenizer, MAX_PROMPT_LENGTH)
    prompt_lengths = sorted(len(e["prompt_ids"]) for e in examples if e is not None)
    max_length = prompt_lengths[-1]  # the longest kept prompt is not shorter -> dropped
    assert prompt_lengths[-2] < max_length
    assert run_tool(data_dir, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "0", "--only-prompt",
                    "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--max-length", str(max_length)) == 0
    out = tmp_path / "out" / "tiny"
    assert sorted(p.name for p in out.iterdir()) == ["data_manifest.json", "train.jsonl", "train_0.bin", "train_0.idx"]
    kept = [e for e in examples if e is not None and len(e["prompt_ids"]) < max_length]
    assert len(kept) == 4
    assert (out / "train_0.bin").read_bytes() == bin_bytes([e["prompt_ids"] for e in kept])
    assert (out / "train.jsonl").read_text() == "".join(json.dumps(e["row"]) + "\n" for e in kept)
    report = capsys.readouterr().out
    assert "[train] rows read 6, kept 4, dropped 2" in report
    assert f"prompt-only not shorter than {max_length} tokens: 1" in report


def test_split_sizes_follow_dev_num(tmp_path, tiny_tokenizer_dir) -> None:
    data_dir = write_raw(tmp_path / "data", ROWS)
    assert run_tool(data_dir, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "4",
                    "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--allow-empty-outputs") == 0
    out = tmp_path / "out" / "tiny"
    assert len(IndexedDataset(str(out / "valid_0"))) == 3  # lines 1-4 minus the long prompt
    assert len(IndexedDataset(str(out / "train_0"))) == 2
    instructions = [json.loads(line)["instruction"] for line in (out / "valid.jsonl").open()]
    assert instructions == [ROWS[0]["instruction"], ROWS[1]["instruction"], ROWS[3]["instruction"]]


def test_output_independent_of_worker_count(tmp_path, tiny_tokenizer_dir) -> None:
    rows = [{"instruction": f"Task {i}: name an animal.", "input": "fox" * (i % 3),
             "output": "The lazy dog. " * (i % 7)} for i in range(300)]
    data_dir = write_raw(tmp_path / "data", rows)
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        assert run_tool(data_dir, out, tiny_tokenizer_dir, "--dev-num", "50", "--allow-empty-outputs",
                        "--data-process-workers", workers) == 0
        outputs.append({p.name: p.read_bytes() for p in (out / "tiny").iterdir()})
    assert len(outputs[0]) == 7 and outputs[0] == outputs[1]  # the manifest included


def test_one_call_writes_every_task_and_variant_as_separate_calls_do(tmp_path, tiny_tokenizer_dir) -> None:
    rows = [{"instruction": f"Task {i}: name an animal.", "input": "", "output": f"Answer {i}.",
             "rationale": "Because it is so." if i % 3 else ""} for i in range(40)]
    data_dir = write_raw(tmp_path / "data", rows)
    common = ("--dev-num", "8")

    def folders(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    for task in ("label", "rationale"):
        assert run_tool(data_dir, tmp_path / "apart/full" / task, tiny_tokenizer_dir, *common, "--task", task) == 0
        assert run_tool(data_dir, tmp_path / "apart/prompt" / task, tiny_tokenizer_dir, *common, "--task", task,
                        "--only-prompt") == 0
    assert run_tool(data_dir, tmp_path / "together/full/{task}", tiny_tokenizer_dir, *common, "--task", "label",
                    "rationale", "--prompt-processed-data-dir", str(tmp_path / "together/prompt/{task}")) == 0
    apart, together = folders(tmp_path / "apart"), folders(tmp_path / "together")
    assert len(apart) == 4 * 8 and together == apart  # .bin/.idx/.jsonl × 2 splits, task.json, manifest


def test_several_tasks_need_the_task_placeholder(tmp_path, tiny_tokenizer_dir, capsys) -> None:
    data_dir = write_raw(tmp_path / "data", [{**ROWS[0], "rationale": "r"}])
    with pytest.raises(SystemExit):
        run_tool(data_dir, tmp_path / "out", tiny_tokenizer_dir, "--task", "label", "rationale")
    assert "must name each task's folder by the placeholder {task}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("bad_line", "expected"),
    [
        ('{"instruction": "x", "output": ', "raw.jsonl:3: malformed JSON"),
        ('{"instruction": "x", "input": ""}', "raw.jsonl:3: field 'output or response': missing"),
        ('{"instruction": "x", "output": ["a"]}', "raw.jsonl:3: field 'output': expected a string"),
        ('["not", "an", "object"]', "raw.jsonl:3: expected a JSON object"),
        ("", "raw.jsonl:3: blank line"),
    ],
)
def test_bad_input_reports_location_and_writes_nothing(
    tmp_path, tiny_tokenizer_dir, capsys, bad_line, expected
) -> None:
    lines = [json.dumps(ROWS[0]), json.dumps(ROWS[1]), bad_line, json.dumps(ROWS[3])]
    data_dir = write_raw(tmp_path / "data", lines)
    out = tmp_path / "out"
    assert run_tool(data_dir, out, tiny_tokenizer_dir, "--dev-num", "1") == 1
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error
    assert not out.exists() or not any(out.rglob("*"))


def test_normalize_keeps_extra_fields() -> None:
    record = {"instruction": "q", "response": "a", "category": "qa", "rationale": "because"}
    assert normalize_instruction_record(record, "f.jsonl", 1) == {
        "instruction": "q", "input": "", "output": "a", "category": "qa", "rationale": "because",
    }
    with pytest.raises(DataFormatError, match=r"^f\.jsonl:7: field 'instruction': missing$"):
        normalize_instruction_record({"output": "a"}, "f.jsonl", 7)


def test_read_jsonl_numbers_lines(tmp_path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1}), (2, {"a": 2})]


REAL_DOLLY = SHARED_DATA / "minillm-data/dolly/raw.jsonl"
REAL_GPT2 = SHARED_DATA / "tokenizers/gpt2"


@pytest.mark.skipif(
    not (REAL_DOLLY.exists() and REAL_GPT2.exists()),
    reason=f"../shared/data absent: needs {REAL_DOLLY} and {REAL_GPT2}",
)
@pytest.mark.parametrize("only_prompt", [False, True])
def test_real_dolly_with_gpt2(tmp_path, only_prompt) -> None:
    gpt2 = AutoTokenizer.from_pretrained(str(REAL_GPT2))
    assert gpt2.encode("Hello world!") == [15496, 995, 0]
    rows = [json.loads(line) for line in REAL_DOLLY.open(encoding="utf-8")]
    examples = expected_examples(rows, gpt2, 256)
    extra = ["--only-prompt"] if only_prompt else []
    assert TOOL.main([
        "--data-dir", str(REAL_DOLLY.parent), "--processed-data-dir", str(tmp_path),
        "--model-path", str(REAL_GPT2), "--model-type", "gpt2", "--dev-num", "100",
        "--max-prompt-length", "256", "--data-process-workers", "2", *extra,
    ]) == 0
    for split, part in (("valid", examples[:100]), ("train", examples[100:])):
        kept = [e for e in part if e is not None and (not only_prompt or len(e["prompt_ids"]) < 512)]
        dataset = IndexedDataset(str(tmp_path / "gpt2" / f"{split}_0"))
        assert len(dataset) == len(kept) > 0
        first = kept[0]["prompt_ids"] + ([] if only_prompt else [SPLIT_ID] + kept[0]["response_ids"])
        assert dataset[0].tolist() == first
        assert dataset.sizes.tolist() == [
            len(e["prompt_ids"]) + (0 if only_prompt else 1 + len(e["response_ids"])) for e in kept
        ]
        jsonl_rows = (tmp_path / "gpt2" / f"{split}.jsonl").read_text().splitlines()
        assert jsonl_rows == [json.dumps(e["row"]) for e in kept]
