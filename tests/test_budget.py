"""minillm/experiments/budget.py: the cost of a plan (FLOPs against their closed forms, model
shapes from configs, the time model, the slow-run warning) and the reference lengths against the
generation budget (what is cut, whether the answer marker fits)."""
from __future__ import annotations

import math

import pytest

from minillm.experiments import budget
from minillm.modeling import load_tokenizer
from world import REPO

CONFIGS = REPO / "configs" / "models"
# A made-up shape whose FLOPs are easy to write down: N = 1000, L = 2, d = 10, vocabulary 50.
SHAPE = budget.ModelShape(parameters=1500, matmul_parameters=1000, vocab=50, layers=2, width=10)
TEACHER = budget.ModelShape(parameters=3000, matmul_parameters=2000, vocab=50, layers=4, width=10)


def test_forward_flops_are_2n_plus_the_attention_term():
    assert SHAPE.forward_flops(context=30) == 2 * 1000 + 4 * 2 * 30 * 10


def test_model_shapes_count_the_output_layer_once_and_no_lookup_table():
    gpt2 = budget.model_shape(CONFIGS / "gpt2-base.json")
    assert (gpt2.parameters, gpt2.vocab, gpt2.layers, gpt2.width) == (124_439_808, 50257, 12, 768)
    assert gpt2.matmul_parameters == gpt2.parameters - 1024 * 768  # tied token table = output layer; positions looked up
    qwen = budget.model_shape(CONFIGS / "qwen2.5-0.5b.json")  # the model card: 0.49B, 0.36B without embedding
    assert qwen.matmul_parameters == qwen.parameters and qwen.parameters - 151936 * 896 == pytest.approx(0.36e9, rel=0.02)


def test_training_is_three_forwards_per_token_plus_a_live_teachers_forward():
    train = budget.Data(rows=64, prompt=20, response=10)
    sft = budget.token_training("sft", "student-sft", SHAPE, train, epochs=2, batch_size=32)
    tokens = 2 * 64 * 30
    assert sft.tokens == tokens and sft.steps == 4 and sft.decoding_steps == 0
    assert sft.flops == tokens * 3 * SHAPE.forward_flops(30)  # 6·N·tokens + the attention term
    assert sft.logit_elements == tokens * 50 * budget.LOGIT_PASSES["train"]
    kd = budget.token_training("kd", "kd", SHAPE, train, epochs=2, batch_size=32, teacher=TEACHER)
    assert kd.flops == sft.flops + tokens * TEACHER.forward_flops(30)
    assert kd.logit_elements == sft.logit_elements + tokens * 50 * budget.LOGIT_PASSES["divergence"]
    # an evaluation per epoch: the validation loss and the sampled answers
    dev = budget.Data(rows=8, prompt=20, response=10)
    evaluated = budget.token_training("sft", "student-sft", SHAPE, train, 2, 32, dev=dev, eval_gen_num=4, new_tokens=6)
    one = budget.forward_pass("x", SHAPE, dev).plus(budget.generation("x", SHAPE, budget.Data(4, 20, 10), 6))
    assert evaluated.flops == pytest.approx(sft.flops + 2 * one.flops)
    assert evaluated.decoding_steps == 2 * 6
    # --eval-gen-num 0 samples every validation prompt, -1 none
    every = budget.validation("x", SHAPE, dev, eval_gen_num=0, new_tokens=6)
    assert every.flops == pytest.approx(budget.forward_pass("x", SHAPE, dev).plus(budget.generation("x", SHAPE, dev, 6)).flops)
    assert budget.validation("x", SHAPE, dev, eval_gen_num=-1, new_tokens=6).flops == budget.forward_pass("x", SHAPE, dev).flops
    # a pass drops its last partial batch, as the training sampler does: 70 items in batches of 32 are 2 steps
    partial = budget.token_training("sft", "student-sft", SHAPE, budget.Data(rows=70, prompt=20, response=10), 2, 32)
    assert partial.steps == 4 and partial.tokens == 4 * 32 * 30


def test_generation_reads_the_prompt_once_then_one_forward_per_new_token():
    data = budget.Data(rows=10, prompt=20, response=0)
    cost = budget.generation("gen", SHAPE, data, new_tokens=8, passes=3, rows_per_batch=4)
    sequences = 3 * 10
    assert cost.flops == sequences * 20 * SHAPE.forward_flops(20) + sequences * 8 * SHAPE.forward_flops(24)
    assert cost.decoding_steps == 3 * math.ceil(10 / 4) * 8 and cost.tokens == sequences * 8
    scored = budget.generation("gen", SHAPE, data, new_tokens=8, rows_per_batch=4, scorer=TEACHER)
    plain = budget.generation("gen", SHAPE, data, new_tokens=8, rows_per_batch=4)
    assert scored.flops == plain.flops + 10 * 28 * TEACHER.forward_flops(28)
    evaluation = budget.evaluation("eval", SHAPE, data, new_tokens=8, seeds=3)  # 3 seeds + one greedy pass
    assert evaluation.kind == "evaluation" and evaluation.tokens == 4 * 10 * 8
    # a sampled token draws one random number per vocabulary entry; greedy decoding draws none
    assert cost.draw_elements == sequences * 8 * 50 and evaluation.draw_elements == 3 * 10 * 8 * 50
    sampled_only = budget.evaluation("eval", SHAPE, data, new_tokens=8, seeds=3, greedy_pass=False)
    assert sampled_only.draw_elements == evaluation.draw_elements and sampled_only.tokens == 3 * 10 * 8


def test_an_on_policy_run_collects_rollouts_then_trains_on_them_and_the_corpus():
    prompts = budget.Data(rows=1000, prompt=20, response=10)
    cost = budget.on_policy("minillm", SHAPE, TEACHER, steps=8, num_rollouts=16, mini_batch=8, ppo_epochs=2,
                            prompts=prompts, new_tokens=6, corpus_tokens=12)
    collect = budget.generation("c", SHAPE, budget.Data(16, 20, 10), 6, scorer=TEACHER)
    collections = 2  # 8 steps, 2 PPO epochs × 16 / 8 = 4 steps per collection
    trained = 8 * 8 * 26 * 3 * SHAPE.forward_flops(26)
    corpus = 8 * 8 * 12 * (3 * SHAPE.forward_flops(12) + TEACHER.forward_flops(12))
    assert cost.flops == pytest.approx(collections * collect.flops + trained + corpus)
    assert (cost.steps, cost.decoding_steps, cost.tokens) == (8, collections * collect.decoding_steps, 2 * 16 * 6)
    assert cost.draw_elements == collections * 16 * 6 * 50  # the rollouts are sampled; training draws nothing


def test_the_time_model_adds_its_terms_and_a_slow_plan_is_named():
    calibration = budget.Calibration(reference_gflops=2.0, launch_s={"kd": 5.0}, step_s=0.5, decode_step_s=0.1,
                                     efficiency=0.5, logit_element_s=1e-9, draw_element_s=2e-8)
    stage = budget.StageCost("kd", "kd", SHAPE, tokens=1, flops=4e9, logit_elements=3e9, steps=10, decoding_steps=20,
                             draw_elements=1e8)
    assert calibration.seconds(stage, gflops=2.0) == pytest.approx(5 + 10 * 0.5 + 20 * 0.1 + 4e9 / 1e9 + 3.0 + 2.0)
    assert calibration.seconds(stage, gflops=1.0) == pytest.approx(2 * calibration.seconds(stage, gflops=2.0))
    quick = budget.estimate([stage], gflops=2.0, calibration=calibration)
    assert budget.slow_run_warning(quick) is None
    big = budget.ModelShape(parameters=30_000_000, matmul_parameters=30_000_000, vocab=151_646, layers=2, width=128)
    heavy = budget.token_training("teacher", "teacher-sft", big, budget.Data(7000, 90, 95), 10, 16)
    estimates = budget.estimate([heavy, stage], gflops=50.0)
    warning = budget.slow_run_warning(estimates)
    assert warning and "the heaviest stages: teacher" in warning and "vocabulary 151,646" in warning
    assert "| teacher | teacher-sft | 30.00M | 151,646 |" in budget.estimate_table(estimates, 50.0)
    total = sum(item.seconds for item in estimates) + 30
    assert (f"about {budget.format_seconds(total)} of stage time, 3 data stages included; about 2.0 min of wall "
            f"time with JOBS=2 on this machine (matmul probe 50 GFLOP/s on 1 thread)") in budget.estimate_table(
        estimates, 50.0, data_stages=3, data_seconds=30.0, wall=120.0, jobs=2, threads=1)
    with pytest.raises(ValueError, match="stage kind 'sft'"):
        budget.StageCost("x", "sft", SHAPE, 0, 0)


def test_the_matmul_probe_measures_a_speed_on_the_threads_asked_and_leaves_torchs_count():
    import torch

    before = torch.get_num_threads()
    assert budget.matmul_gflops(seconds=0.05, size=128) > 0
    assert budget.matmul_gflops(seconds=0.05, size=128, threads=1) > 0
    assert torch.get_num_threads() == before


def test_the_wall_time_follows_the_drivers_schedule():
    stages = [("teacher", 10.0, []), ("sft", 4.0, []), ("kd", 3.0, ["teacher"]), ("eval-sft", 2.0, ["sft"]),
              ("eval-kd", 2.0, ["kd", "inputs-made-earlier"])]
    assert budget.wall_seconds(stages, jobs=1) == pytest.approx(21.0)  # the sum
    # two slots: teacher ‖ sft, eval-sft (4–6); kd after the teacher (10–13), then eval-kd (13–15)
    assert budget.wall_seconds(stages, jobs=2) == pytest.approx(15.0)
    assert budget.wall_seconds(stages, jobs=8) == pytest.approx(15.0)  # the critical path
    with pytest.raises(ValueError, match="stages kd read from stages that never run"):
        budget.wall_seconds([("kd", 1.0, ["kd"])], jobs=2)


# ---------------------------------------------------------------- lengths

ROWS = [  # a short answer, a long one whose marker falls past the budget, an open-ended row
    {"instruction": "Add 2 and 3.", "input": "", "output": "2 + 3 = 5.\nThe answer is 5.", "rationale": "2 + 3 = 5.",
     "answer": "5"},
    {"instruction": "Count.", "input": "", "output": "one two three four five six seven eight nine ten eleven "
     "twelve thirteen fourteen fifteen sixteen.\nThe answer is 16.", "rationale": "one two three ... sixteen.",
     "answer": "16"},
    {"instruction": "Write a line.", "input": "", "output": "A fox ran.", "rationale": "", "answer": ""},
]


def test_lengths_count_what_the_budget_cuts_and_where_the_answer_ends(tiny_tokenizer_dir):
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    budget_tokens = len(tokenizer.encode(ROWS[0]["output"])) + 2  # the first answer fits, the second does not
    prompt = len(tokenizer.encode(budget.build_task_prompt("", "Count.", "")))
    check = budget.check_lengths(tokenizer, ROWS, budget.gold_response, "gold responses",
                                 max_length=prompt + budget_tokens + 100, max_prompt_length=prompt + 100)
    assert (check.rows, check.budget, check.with_answer, check.with_marker, check.marker_fits) == (3, budget_tokens, 2, 2, 1)
    assert check.over_budget == 1 and check.over_max_length == 0
    assert check.longest == len(tokenizer.encode(ROWS[1]["output"])) + 1  # with its EOS
    warnings, refusals = budget.length_findings([check])
    assert any("1 of 3 (33%) are longer than the generation budget" in w for w in warnings)
    assert refusals and "in only 1 of the 2 rows that state one (50%)" in refusals[0] and "Raise MAX_LENGTH" in refusals[0]
    # room for both: no refusal; a response without a marker is named
    roomy = budget.check_lengths(tokenizer, ROWS, budget.gold_response, "gold", 400, 100)
    unmarked = [{**ROWS[0], "output": "2 + 3 = 5."}]
    warnings, refusals = budget.length_findings([roomy, budget.check_lengths(tokenizer, unmarked, budget.gold_response,
                                                                             "gold", 400, 100)])
    assert not refusals and any("1 of 1 rows with an `answer` state no answer marker" in w for w in warnings)


def test_the_chain_of_thought_format_is_the_rationale_then_its_conclusion(tiny_tokenizer_dir):
    assert budget.chain_of_thought_response(ROWS[0]) == "2 + 3 = 5. So the answer is 5."
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    check = budget.check_lengths(tokenizer, ROWS[:2], budget.chain_of_thought_response, "DSS chain of thought",
                                 400, 100, task_prefix="[rationale] ")
    assert check.with_marker == check.marker_fits == 2 and check.data().rows == 2
