"""train_kd.py with a teacher whose tokenizer differs from the student's (--cross-tokenizer), at toy
size: the toy world's teacher (byte-level BPE, 800 tokens) and a student with another byte-level
BPE (400 tokens), its data re-tokenized by tools/retokenize_data.py. Off-policy (the data's
responses) and on-policy (GKD's student samples, re-tokenized for the teacher) in one run; each
distance through the objective in process."""
from __future__ import annotations

import json

import pytest
import torch
from world import load_tool, run_entrypoint

from minillm import args as cli
from minillm.data.cross_tokenizer import TextCodec, vocabulary_map
from minillm.data.datasets import TokenDataset, collate_sft
from minillm.modeling import load_model, load_tokenizer
from minillm.ppo.cross_tokenizer import CrossTokenizerRolloutScorer
from minillm.train.objectives import CrossTokenizerObjective


@pytest.fixture(scope="module")
def cross_pair(world, tiny_tokenizer_dir, tmp_path_factory):
    """(student folder, its re-tokenized data, --max-prompt-length, --max-length)."""
    root = tmp_path_factory.mktemp("cross_pair")
    tiny = load_tool("make_tiny_default")
    tiny.build_model(tiny_tokenizer_dir, root / "student", tiny.ModelShape(n_layer=1, n_head=2, n_embd=32),
                     n_positions=1024, seed=0)
    assert load_tool("retokenize_data").main(["--data-dir", str(world.processed), "--data-tokenizer",
                                              str(world.tokenizer), "--tokenizer", str(tiny_tokenizer_dir),
                                              "--out", str(root / "data")]) == 0
    splits = json.loads((root / "data" / "retokenized.json").read_text())["folders"]
    counts = next(iter(splits.values())).values()
    return (root / "student", root / "data", max(c["longest_prompt"] for c in counts),
            max(c["longest_item"] for c in counts))


def _run(world, cross_pair, save, *extra):
    student, data, prompt_length, length = cross_pair
    run_entrypoint(["train_kd.py", "--model-path", str(student), "--data-dir", str(data), "--save", str(save),
                    "--teacher-model-path", str(world.teacher), "--max-prompt-length", str(prompt_length),
                    "--max-length", str(length), "--batch-size", "8", "--micro-batch-size", "8", "--lr", "3e-3",
                    "--eval-gen-num", "-1", "--log-interval", "1", "--dropout", "0",
                    "--deepspeed-config", "configs/deepspeed/zero1_fp32.json", *extra])
    return [json.loads(line) for line in (save / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_student_with_another_tokenizer_trains_off_and_on_policy(world, cross_pair, tmp_path):
    # GKD's λ 0.5 with seed 1 draws the data's responses at step 0 and the student's own at step 1.
    records = _run(world, cross_pair, tmp_path / "aligned", "--cross-tokenizer", "aligned", "--kd-ratio", "0.5",
                   "--gkd-lambda", "0.5", "--seed", "1", "--max-new-tokens", "16", "--total-steps", "2",
                   "--eval-interval", "2")
    steps = [r for r in records if r.get("event") is None and "kd" in r]
    assert len(steps) == 2 and all(0 < r["kd"] < float("inf") and 0 < r["paired"] < 1 for r in steps)
    assert "rollout_tokens" not in steps[0] and steps[1]["rollout_tokens"] > 0, "step 1 trained on its own samples"
    assert [r for r in records if r.get("event") == "eval"][-1]["valid_kd"] > 0
    mapped = json.loads((tmp_path / "aligned" / "vocabulary_map.json").read_text())
    assert mapped["matched"] > 100 and mapped["student_vocabulary"] != mapped["teacher_vocabulary"]


@pytest.mark.parametrize("distance", ["uld", "aligned"])
def test_the_objective_trains_the_student_and_leaves_the_teacher(world, cross_pair, distance):
    student_dir, data, _, length = cross_pair
    student, teacher = load_model(student_dir), load_model(world.teacher)
    student_tokenizer, teacher_tokenizer = load_tokenizer(student_dir), load_tokenizer(world.teacher)
    vocabulary = tuple(map(torch.from_numpy, vocabulary_map(student_tokenizer, teacher_tokenizer)))
    objective = CrossTokenizerObjective(teacher, TextCodec(student_tokenizer), TextCodec(teacher_tokenizer), distance,
                                        0.5, len(student_tokenizer), len(teacher_tokenizer), 256,
                                        vocabulary if distance == "aligned" else None)
    dataset = TokenDataset(data, "valid", length)
    batch = collate_sft([dataset.example(i) for i in range(4)], student_tokenizer.pad_token_id)
    loss, parts = objective(student, batch)
    loss.sum().backward()
    assert loss.shape == parts["kd"].shape == parts["paired"].shape == (4,)
    assert torch.isfinite(loss).all() and (parts["kd"] > 0).all() and (parts["paired"] > 0).all()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert all(p.grad is None for p in teacher.parameters())


def test_rollout_scorer_with_one_tokenizer_gives_the_teachers_token_log_probs(world):
    """With the teacher's own tokenizer every span is one token: the scorer's terms are the teacher's
    log-probabilities of the response tokens, as a plain forward pass gives them."""
    tokenizer, teacher = load_tokenizer(world.tokenizer), load_model(world.teacher).eval()
    dataset = TokenDataset(world.processed, "valid", 160)
    examples = [dataset.example(i) for i in range(3)]
    prompts = [e.tokens[:e.prompt_len] for e in examples]
    lengths = torch.tensor([len(e.tokens) - e.prompt_len for e in examples])
    responses = torch.full((3, int(lengths.max())), tokenizer.pad_token_id)
    for row, e in enumerate(examples):
        responses[row, :lengths[row]] = torch.from_numpy(e.tokens[e.prompt_len:])
    codec = TextCodec(tokenizer)
    terms = CrossTokenizerRolloutScorer(teacher, codec, codec, 256)(prompts, responses, lengths)
    for row, e in enumerate(examples):
        ids = torch.from_numpy(e.tokens)[None]
        with torch.no_grad():
            expected = teacher(input_ids=ids).logits.log_softmax(-1)[0, e.prompt_len - 1:-1].gather(
                1, ids[0, e.prompt_len:, None])[:, 0]
        text_tokens = int(lengths[row]) - 1  # the response ends with EOS, which spells nothing
        assert terms.scored[row].tolist() == [1.0] * text_tokens + [0.0] * (responses.shape[1] - text_tokens)
        torch.testing.assert_close(terms.teacher_logprobs[row, :text_tokens], expected[:text_tokens],
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("flags, message", [
    (["--teacher-tokenizer", "T"], "applies with --cross-tokenizer only"),
    (["--cross-tokenizer", "uld", "--kd-loss", "reverse_kl"], "takes no --kd-loss"),
    (["--cross-tokenizer", "aligned", "--teacher-cache", "C"], "cannot serve --cross-tokenizer"),
    (["--cross-tokenizer", "aligned", "--gkd-off-policy", "teacher"], "teacher's token ids"),
    (["--cross-tokenizer", "aligned", "--ptx-kd-ratio", "0.5"], "needs a shared tokenizer"),
])
def test_cross_tokenizer_flags_refuse_what_needs_a_shared_tokenizer(flags, message, capsys):
    parser = cli.token_training_parser("", cli.add_kd_args, cli.add_teacher_cache_args, cli.add_generated_response_args,
                                       cli.add_pretraining_args)
    args = parser.parse_args(["--model-path", "S", "--data-dir", "D", "--save", "R", "--teacher-model-path", "T",
                              "--deepspeed-config", "configs/deepspeed/zero1_fp32.json", *flags])
    with pytest.raises(SystemExit, match=message):
        cli.validate(args)
