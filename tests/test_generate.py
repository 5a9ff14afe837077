"""tools/generate.py: SeqKD data holds the teacher's text, and processing turns it into training data."""
from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from minillm.data.datasets import TokenDataset
from world import load_tool, run_entrypoint

pytestmark = pytest.mark.slow


def test_teacher_outputs_replace_gold_outputs_except_on_validation_rows(world, tmp_path):
    out = tmp_path / "seqkd"
    run_entrypoint(["tools/generate.py", "--model-path", str(world.teacher), "--data-dir", str(world.data),
                    "--save", str(out), "--dev-num", "40", "--max-prompt-length", "96", "--max-new-tokens", "12"])
    gold = [json.loads(line) for line in open(world.data / "raw.jsonl")]
    rows = [json.loads(line) for line in open(out / "raw.jsonl")]
    assert len(rows) == len(gold)
    assert rows[:40] == gold[:40]  # validation stays gold
    assert all(r["gold_output"] == g["output"] for r, g in zip(rows[40:], gold[40:]))
    assert sum(r["output"] != g["output"] for r, g in zip(rows[40:], gold[40:])) > 0.9 * (len(rows) - 40)
    meta = json.loads((out / "generation.json").read_text())
    assert meta["generated_rows"] == len(rows) - 40 and meta["sampling"]["temperature"] == 1.0
    assert meta["generated_rows"] <= meta["tokens"] <= 12 * meta["generated_rows"] and meta["peak_memory_mib"] > 0

    processed = tmp_path / "processed"
    status = load_tool("process_data_dolly").main([
        "--data-dir", str(out), "--processed-data-dir", str(processed), "--model-path", str(world.tokenizer),
        "--model-type", "tiny", "--dev-num", "40", "--max-prompt-length", "96", "--max-length", "160"])
    assert status == 0
    train = TokenDataset(processed / "tiny", "train", 160)
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer)
    kept = [json.loads(line) for line in open(processed / "tiny" / "train.jsonl")]
    for index in (0, 5, len(train) - 1):
        example = train.example(index)
        response = tokenizer.decode(example.tokens[example.prompt_len:], skip_special_tokens=True)
        assert response == kept[index]["output"]
        assert kept[index]["output"] in {r["output"] for r in rows[40:]}
