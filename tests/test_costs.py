"""The plan's cost estimate and length checks (minillm/experiments/costs.py), on the toy world laid
out as the tiny preset's WORK: every training, generation and evaluation stage is costed; a budget
too short for the answer marker is refused; a random-init teacher with step-by-step arms warns."""
from __future__ import annotations

import json
import math
import shutil

import pytest
from world import REPO

from minillm.experiments import costs
from minillm.experiments import methods as registry
from minillm.experiments.plan import build_plan
from minillm.experiments.settings import load_settings
from minillm.random_init import record_random_init

PROBE = 120.0  # GFLOP/s, given: no probe, so the estimate does not depend on the machine's load


def tiny(world, **environ):
    settings = load_settings("tiny", REPO, {"WORK": str(world.root), "DEV_NUM": "40", **environ})
    return settings, build_plan(settings)


def test_every_training_generation_and_evaluation_stage_is_costed(world):
    settings, plan = tiny(world, METHODS="default")
    report = costs.plan_report(settings, plan, gflops=PROBE)
    costed = {item.stage.name: item for item in report.estimates}
    wanted = {stage.name for stage in plan.stages if stage.kind in ("train", "eval")} | {
        "teacher", "dss-teacher", "seqkd-data", "dss-teacher-data"}
    assert set(costed) == wanted
    assert all(item.seconds > 0 and item.stage.flops > 0 for item in report.estimates)
    # the teacher trains a 4-layer model for 10 epochs; a student a 2-layer one for 6
    assert costed["teacher"].stage.flops > 2 * costed["sft-seed10"].stage.flops
    assert costed["kd-forward_kl-seed10"].stage.teacher is not None and costed["sft-seed10"].stage.teacher is None
    assert costed["minillm-seed10"].stage.kind == "minillm" and costed["minillm-seed10"].stage.decoding_steps > 0
    assert not report.refusals and "estimated time" in report.table()
    # the data stages count as their start-up; JOBS=2 overlaps the stages, and never beats the teacher's chain
    data = [stage.name for stage in plan.stages if stage.name not in costed]
    assert "process" in data and report.data_stages == len(data)
    assert report.total_seconds == sum(item.seconds for item in report.estimates) + report.data_seconds
    chain = sum(costed[name].seconds for name in ("teacher", "dss-teacher", "dss-teacher-data", "eval-dss-seed10"))
    assert chain < report.wall_seconds < report.total_seconds and report.jobs == settings.jobs
    assert costs.plan_report(*tiny(world, METHODS="default", JOBS="1"), gflops=PROBE).wall_seconds == pytest.approx(report.total_seconds)


def test_a_budget_too_short_for_the_answer_is_refused_naming_the_variable(world):
    settings, plan = tiny(world, MAX_LENGTH="88", MAX_PROMPT_LENGTH="80", METHODS="sft")
    report = costs.plan_report(settings, plan, gflops=PROBE)
    assert any("answer marker" in refusal and "MAX_LENGTH" in refusal for refusal in report.refusals), report.refusals
    assert any("longer than the generation budget" in warning for warning in report.warnings)


def test_a_random_init_teacher_with_step_by_step_arms_warns_naming_methods_without_them(world, tmp_path):
    teacher = shutil.copytree(world.teacher, tmp_path / "teacher")
    record_random_init(teacher, seed=1)
    settings, plan = tiny(world, TEACHER_INIT=str(teacher), METHODS="sft dss")
    warnings = costs.plan_report(settings, plan, gflops=PROBE).warnings
    assert any("random-init" in warning and 'METHODS="sft"' in warning for warning in warnings), warnings
    settings, plan = tiny(world, TEACHER_INIT=str(teacher), METHODS="sft")
    assert not any("random-init" in warning for warning in costs.plan_report(settings, plan, gflops=PROBE).warnings)
    assert json.loads((teacher / "random_init.json").read_text())["random_init"] is True


def test_a_random_init_teachers_seqkd_answers_are_costed_at_the_generation_budget(world, tmp_path):
    """SeqKD's student trains on the teacher's answers: as long as the gold ones from a trained
    teacher, the whole budget from a random-init one (the GSM8K toy recipe measured 2.2× its
    gold-length estimate)."""
    def tokens(teacher) -> dict[str, float]:
        settings, plan = tiny(world, TEACHER_INIT=str(teacher), METHODS="sft seqkd")
        report = costs.plan_report(settings, plan, gflops=PROBE)
        return {item.stage.name: item.stage.tokens for item in report.estimates}
    trained = tokens(world.teacher)
    assert trained["seqkd-seed10"] == trained["sft-seed10"]
    teacher = shutil.copytree(world.teacher, tmp_path / "teacher")
    record_random_init(teacher, seed=1)
    random_init = tokens(teacher)
    assert random_init["sft-seed10"] == trained["sft-seed10"] < random_init["seqkd-seed10"]


def test_checkpoint_candidates_set_the_evaluations_counted_except_for_reference_recipes(world):
    """An arm's estimate counts CHECKPOINT_CANDIDATES evaluations; a peer's reference recipe keeps
    its authors' validation schedule (the driver does not pass it --evaluations)."""
    def seconds(candidates: str) -> dict[str, float]:
        settings, plan = tiny(world, METHODS="sft minillm gkd-ref opd-ref", CHECKPOINT_CANDIDATES=candidates)
        return {item.stage.name: item.seconds for item in costs.plan_report(settings, plan, gflops=PROBE).estimates}
    two, four = seconds("2"), seconds("4")
    for arm in ("sft", "minillm"):
        assert four[f"{arm}-seed10"] > two[f"{arm}-seed10"], arm
    for arm in ("gkd-ref", "opd-ref"):
        assert four[f"{arm}-seed10"] == pytest.approx(two[f"{arm}-seed10"]), arm


def test_a_line_separator_inside_a_json_string_leaves_the_row_whole(world, tmp_path):
    """JSON Lines end at "\\n" only: GSM8K's raw.jsonl holds U+2028 inside strings, where
    str.splitlines cut a row in two and the estimate failed (JSONDecodeError)."""
    raw_dir = tmp_path / "tiny"
    shutil.copytree(world.root / "data" / "tiny", raw_dir)
    rows = (raw_dir / "raw.jsonl").read_text(encoding="utf-8").split("\n")
    row = json.loads(rows[-2])
    rows[-2] = json.dumps({**row, "output": row["output"] + "\u2028"}, ensure_ascii=False)
    (raw_dir / "raw.jsonl").write_text("\n".join(rows), encoding="utf-8")
    plain = costs.plan_report(*tiny(world, METHODS="sft"), gflops=PROBE)
    separated = costs.plan_report(*tiny(world, METHODS="sft", RAW_DIR=str(raw_dir)), gflops=PROBE)
    assert [item.stage.name for item in separated.estimates] == [item.stage.name for item in plain.estimates]


def test_the_teacher_and_the_corpus_are_costed_only_where_the_stage_runs_them(world):
    """The control arm trains by CE on the task (--kd-ratio 0): the teacher reads its corpus chunks
    only; without a corpus (PTX_TEXT empty) no arm pays a corpus term."""
    settings, plan = tiny(world, METHODS="kd sft-continued minillm")
    with_corpus = {item.stage.name: item.stage for item in costs.plan_report(settings, plan, gflops=PROBE).estimates}
    without_corpus = {item.stage.name: item.stage for item in costs.plan_report(
        *tiny(world, METHODS="kd sft-continued minillm", PTX_TEXT=""), gflops=PROBE).estimates}
    methods = registry.METHODS
    assert costs.teacher_terms(methods["sft-continued"], settings) == (0.0, settings.ptx_kd_ratio)
    assert costs.teacher_terms(methods["sft-continued"], settings, corpus=False) == (0.0, 0.0)
    assert costs.teacher_terms(methods["kd-forward_kl"], settings) == (settings.kd_ratio, 0.0)
    assert costs.teacher_terms(methods["distillm-ref"], settings) == (1.0, 0.0)  # the authors' corpus term is CE
    assert costs.teacher_terms(methods["sft-continued-ref"], settings) == (0.0, 0.0)  # their control: no teacher
    control = with_corpus["sft-continued-seed10"]
    assert control.kind == "kd" and control.teacher is None  # a teacher loaded, for the corpus alone
    alone = without_corpus["sft-continued-seed10"]
    assert alone.kind == "student-sft" and alone.flops < control.flops
    assert without_corpus["minillm-seed10"].flops < with_corpus["minillm-seed10"].flops
    assert without_corpus["kd-forward_kl-seed10"] == with_corpus["kd-forward_kl-seed10"]


def test_a_training_fraction_is_costed_at_the_whole_sets_optimizer_steps(world):
    """TRAIN_FRACTION keeps the whole set's steps (--fraction-budget steps, as the DSS reference's
    curves): a student on an eighth of the questions costs what it costs on all of them."""
    def student_costs(fraction):
        settings, plan = tiny(world, METHODS="label-sft dss", TRAIN_FRACTION=fraction)
        return {item.stage.name: item.stage for item in costs.plan_report(settings, plan, gflops=PROBE).estimates}
    whole, eighth = student_costs("1"), student_costs("0.125")
    for name in ("label-sft-seed10", "dss-seed10"):
        assert eighth[name].steps == whole[name].steps and eighth[name].flops == pytest.approx(whole[name].flops)


def test_the_continued_arms_that_sample_pay_for_their_samples(world, monkeypatch):
    """GKD's student samples λ of its steps' responses (the expectation) and, with GKD_OFF_POLICY=teacher,
    the teacher the rest; the cross-tokenizer on-policy arms sample in every step, the control arm never;
    a reference recipe's own new-token budget is capped by the preset's. DistiLLM's adaptive samples
    are costed with p at its start (none), their bound in a warning."""
    settings, plan = tiny(world, METHODS="sft-continued gkd gkd-ref distillm")
    methods = registry.METHODS
    steps, batch = settings.minillm_steps, settings.mini_batch

    def shares(key, **environ):
        return costs.sampled_share(methods[key], tiny(world, **environ)[0] if environ else settings, steps, batch, 2)
    assert shares("gkd") == (settings.gkd_lambda, 0.0) and shares("gkd-ref") == (0.5, 0.0)
    assert shares("gkd", GKD_OFF_POLICY="teacher") == (settings.gkd_lambda, 1 - settings.gkd_lambda)
    assert shares("uld-onpolicy") == (1.0, 0.0) and shares("sft-continued") == (0.0, 0.0)
    assert shares("distillm") == shares("distillm-ref") == (0.0, 0.0)
    report = costs.plan_report(settings, plan, gflops=PROBE)
    staged = {item.stage.name: item.stage for item in report.estimates}
    control, gkd = staged["sft-continued-seed10"], staged["gkd-seed10"]
    new_tokens = settings.max_length - settings.max_prompt_length
    sampled = round(settings.gkd_lambda * steps * batch)
    assert gkd.draw_elements - control.draw_elements == sampled * new_tokens * gkd.model.vocab  # same validations
    assert gkd.decoding_steps - control.decoding_steps == math.ceil(sampled / batch) * new_tokens
    assert staged["distillm-seed10"].draw_elements == control.draw_elements
    teacher_samples = {item.stage.name: item.stage for item in costs.plan_report(
        *tiny(world, METHODS="gkd", GKD_OFF_POLICY="teacher"), gflops=PROBE).estimates}["gkd-seed10"]
    assert teacher_samples.flops > gkd.flops and teacher_samples.draw_elements > gkd.draw_elements
    # the sampler runs once per micro-batch: a smaller one decodes in more calls
    micro = {item.stage.name: item.stage for item in costs.plan_report(
        *tiny(world, METHODS="sft-continued gkd", MICRO_BATCH_SIZE="8"), gflops=PROBE).estimates}
    assert micro["gkd-seed10"].decoding_steps - micro["sft-continued-seed10"].decoding_steps == (
        math.ceil(sampled / 8) * new_tokens)
    # gkd-ref asks for 128 new tokens; the preset's budget (48) caps them
    monkeypatch.setattr(costs, "sampled_share", lambda *args, **kwargs: (0.0, 0.0))
    unsampled = {item.stage.name: item.stage for item in costs.plan_report(settings, plan, gflops=PROBE).estimates}
    reference = staged["gkd-ref-seed10"]
    assert reference.draw_elements - unsampled["gkd-ref-seed10"].draw_elements == (
        round(0.5 * reference.steps * settings.batch_size) * new_tokens * reference.model.vocab)
    # DistiLLM's bound: on tiny's 64 steps p can reach 0.1 at the first validation only, a few seconds
    warning, = [w for w in report.warnings if w.startswith("distillm: ")]
    amount = warning.split("up to ")[1].split(" of stage time")[0]
    assert amount.endswith(" s") and 0 < float(amount[:-2]) < 60, warning


def test_a_reference_recipe_is_costed_at_the_values_its_stage_runs(world):
    """distillm-ref and abkd-ref are sized in epochs: on tiny the students' (STUDENT_EPOCHS, the
    preset's batch), which is what plan.py passes them; the estimate once read the authors' 20."""
    settings, plan = tiny(world, METHODS="sft distillm-ref abkd-ref")
    staged = {item.stage.name: item.stage for item in costs.plan_report(settings, plan, gflops=PROBE).estimates}
    assert staged["distillm-ref-seed10"].steps == staged["abkd-ref-seed10"].steps == staged["sft-seed10"].steps
    for key in ("distillm-ref", "abkd-ref"):
        command = plan.stage(f"{key}-seed10").env["EXTRA_ARGS"]
        assert f"--epochs {settings.student_epochs} " in command and f"--batch-size {settings.batch_size} " in command
    three_epochs = tiny(world, METHODS="distillm-ref", STUDENT_EPOCHS="3")
    shorter = {item.stage.name: item.stage for item in costs.plan_report(*three_epochs, gflops=PROBE).estimates}
    assert shorter["distillm-ref-seed10"].steps * 2 == staged["distillm-ref-seed10"].steps


@pytest.mark.parametrize("steps, evaluations", [(64, 2), (1860, 20)])
def test_the_adaptive_samples_bound_is_distillms_rule_at_its_fastest_rise(steps, evaluations):
    """adaptive_share against the training code's own rule (AdaptiveStudentOutputs.kind), replayed
    with p raised at every validation, averaged over seeds: the controlled arm's 64 steps with two
    candidates, and the reference recipe at its authors' 20 epochs of 93 steps with validation once per epoch."""
    torch = pytest.importorskip("torch")
    from types import SimpleNamespace

    from minillm.train.response_source import STUDENT, AdaptiveSGOConfig, AdaptiveStudentOutputs
    batch, capacity, interval, shares = 32, 1000, steps // evaluations, []
    for seed in range(40 if steps < 100 else 4):
        rule = AdaptiveStudentOutputs(AdaptiveSGOConfig(steps, capacity=capacity),
                                      SimpleNamespace(seed=seed, dist=SimpleNamespace(device=torch.device("cpu"))))
        rule.after_validation(0.0)  # the reference at step 0
        sampled = 0
        for step in range(steps):
            if step and step % interval == 0:
                rule.after_validation(float(step))  # a loss that always rose by more than loss_eps
            if rule.kind(step) == STUDENT:
                sampled += 1
                rule.buffer.extend([(0, None)] * batch)
        shares.append(sampled / steps)
    expected = costs.adaptive_share(steps, evaluations, batch, capacity, initial=0.0, rise=0.1)
    assert expected == pytest.approx(sum(shares) / len(shares), abs=0.02)
    assert costs.adaptive_share(steps, evaluations, batch, capacity, initial=0.0, rise=0.0) == 0.0


def test_a_step_by_step_batch_counts_questions_each_with_its_label_and_rationale_rows(world):
    """Steps as training counts them (GlobalBatchSampler over the questions, the last partial batch
    dropped): a DSS step is a batch of questions, each with its label and rationale rows (the paired
    streams), so as many steps as the label task alone and more tokens; the continued control keeps
    the on-policy arms' steps; the token-matched label arm takes as many steps as DSS's tokens need
    on label rows, and without checkpoint candidates validates once per pass."""
    from minillm.data.datasets import GlobalBatchSampler
    settings, plan = tiny(world, METHODS="label-sft dss dss-continued label-distill-tokens")
    questions = len(costs._rows(settings.raw_dir / "raw.jsonl")) - settings.dev_num
    per_epoch = GlobalBatchSampler(questions, settings.batch_size, seed=0).steps_per_epoch
    staged = {item.stage.name: item.stage for item in costs.plan_report(settings, plan, gflops=PROBE).estimates}
    label, dss = staged["label-sft-seed10"], staged["dss-seed10"]
    assert label.steps == dss.steps == settings.student_epochs * per_epoch and dss.tokens > 1.3 * label.tokens
    continued = staged["dss-continued-seed10"]
    assert continued.steps == settings.minillm_steps and continued.tokens > 1.3 * settings.minillm_steps * (
        settings.mini_batch * label.tokens / (label.steps * settings.batch_size))  # both tasks' rows
    matched = staged["label-distill-tokens-seed10"]
    ratio = dss.tokens / label.tokens  # train_sft.py --token-matched-to: round(steps × token ratio)
    assert matched.steps == pytest.approx(label.steps * ratio, abs=1)
    assert matched.tokens == pytest.approx(dss.tokens, rel=0.01)
    uncandidated = {item.stage.name: item.stage for item in costs.plan_report(
        *tiny(world, METHODS="label-sft label-distill-tokens", CHECKPOINT_CANDIDATES=""), gflops=PROBE).estimates}
    per_validation = uncandidated["label-sft-seed10"].decoding_steps / settings.student_epochs  # its samples
    assert uncandidated["label-distill-tokens-seed10"].decoding_steps == (
        math.ceil(settings.student_epochs * ratio) * per_validation)


def test_an_on_policy_arm_whose_fraction_cannot_fill_a_collection_is_refused_before_it_runs(world):
    """DSS-MiniLLM draws NUM_ROLLOUTS distinct prompts per collection from the items TRAIN_FRACTION
    keeps (a question's label and rationale prompts); at 1/64 of the tiny questions it failed only
    when its stage started. Refused when even two prompts per question fall short, a warning when the
    mean number of prompts per question does; the controlled OPD arm draws one mini-batch (its
    NUM_ROLLOUTS) and is not refused where DSS-MiniLLM is; the token-level arms never are."""
    settings, _ = tiny(world)
    questions = len(costs._rows(settings.raw_dir / "raw.jsonl")) - settings.dev_num
    methods = "label-sft dss dss-minillm opd opd-ref"

    def findings(kept: float):
        report = costs.plan_report(*tiny(world, METHODS=methods, TRAIN_FRACTION=f"{kept / questions:.6f}"),
                                   gflops=PROBE)
        return report.refusals, [w for w in report.warnings if "distinct prompts" in w]
    refused, warned = findings(settings.num_rollouts / 2 - 1)  # at most 2 prompts per question
    assert [message.split(":")[0] for message in refused] == ["dss-minillm"] and not warned, refused
    assert f"fewer than the {settings.num_rollouts} distinct prompts" in refused[0]
    refused, warned = findings(settings.num_rollouts / 2 + 1)  # enough at 2 per question, not at the mean
    assert not refused and [message.split(":")[0] for message in warned] == ["dss-minillm"], warned
    assert not any(findings(settings.num_rollouts + 1))  # at least one prompt per question: enough
    refused, _ = findings(settings.mini_batch - 1)  # the OPD arms draw one mini-batch of prompts
    assert sorted(message.split(":")[0] for message in refused) == ["dss-minillm", "opd"], refused
