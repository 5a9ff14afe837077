"""The comparison's stage graph as data (minillm/experiments/plan.py) and the method registry it
reads (methods.py): which stages an arm brings, what each stage is given, that the registry, the
report and the driver's checks agree, that a new arm needs only a registry entry, and that an
edited config, template or setting reruns exactly the stages that read it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_report import write_json, write_summary
from world import REPO

from minillm import args as cli
from minillm.experiments import methods as registry
from minillm.experiments import preflight
from minillm.experiments.comparison import build_comparison, declared_comparisons
from minillm.experiments.methods import METHODS, Method, SelectionError, select
from minillm.experiments.plan import build_plan
from minillm.experiments.reading import load_results
from minillm.experiments.settings import load_settings
from minillm.experiments.stages import ContentHashes, StageBook, code_files
from minillm.losses import DIVERGENCES


def plan_for(tmp_path: Path, preset: str = "tiny", base: Path = REPO, **environ: str):
    settings = load_settings(preset, base, {"WORK": str(tmp_path / "work"), **environ})
    return settings, build_plan(settings)


def stage_env(plan, name: str) -> dict[str, str]:
    return plan.stage(name).env


def test_an_arm_brings_only_the_stages_it_needs(tmp_path):
    _, plan = plan_for(tmp_path, METHODS="minillm")
    names = [stage.name for stage in plan.stages]
    assert plan.notes == ["METHODS: minillm starts from the sft student, so sft runs too"]
    assert {"inputs", "process", "process-pretrain", "teacher", "sft-seed10", "minillm-seed10", "eval-minillm-seed10",
            "eval-sft-seed10", "eval-teacher-seed10", "eval-untrained-init"} == set(names) - {"student-init-seed10"}
    for stage in plan.stages:  # every input is written by an earlier stage or exists before the run
        for path in stage.inputs:
            assert plan.producers(stage) or path.is_relative_to(REPO), (stage.name, path)
    assert plan.record["methods_not_run"] == ["seqkd", "sft-continued", "sft-continued-student-lr", "minillm-lmops",
                                              "opd", "gkd", "distillm", "sft-continued-ref", "distillm-ref", "gkd-ref", "opd-ref",
                                              "abkd-ref", "uld", "aligned-kd", "uld-onpolicy", "aligned-onpolicy", "label-sft",
                                              "label-distill", "label-distill-tokens", "dss", "dss-gold", "dss-kd",
                                              "dss-continued", "dss-continued-student-lr", "dss-minillm", "kd"]


def test_the_on_policy_arms_share_their_control_arms_recipe(tmp_path):
    settings, plan = plan_for(tmp_path, METHODS="all")
    control = stage_env(plan, "sft-continued-seed10")
    for arm in ("minillm", "minillm-lmops", "opd", "gkd", "distillm"):
        env = stage_env(plan, f"{arm}-seed10")
        assert env["INIT_PATH"].endswith("runs/sft/seed10") and env["PTX"] == "1" and "PTX_DATA_DIR" in env
        for name in ("LR", "TOTAL_STEPS", "WARMUP_STEPS", "PTX_KD_RATIO", "PTX_DATA_DIR", "SEED"):
            assert env[name] == control[name], (arm, name)
        assert f"eval-{arm}-seed10" in [stage.name for stage in plan.stages]
    assert stage_env(plan, "minillm-lmops-seed10")["EXTRA_ARGS"] == "--resume --evaluations 2 --whiten reference"
    assert stage_env(plan, "opd-seed10")["NUM_ROLLOUTS"] == stage_env(plan, "opd-seed10")["MINI_BATCH"]
    assert stage_env(plan, "gkd-seed10")["BATCH_SIZE"] == control["BATCH_SIZE"] == "32"  # MINI_BATCH
    dss_control = stage_env(plan, "dss-continued-seed10")
    assert dss_control["INIT_PATH"].endswith("runs/dss/seed10") and "RATIONALE_DATA_DIR" in dss_control
    # the second rate: each control arm again at the students' learning rate, all else its own
    for matched, second in ((control, stage_env(plan, "sft-continued-student-lr-seed10")),
                            (dss_control, stage_env(plan, "dss-continued-student-lr-seed10"))):
        assert second["LR"] == str(settings.student_lr) != matched["LR"]
        assert {k: v for k, v in second.items() if k not in ("LR", "SAVE_PATH")} == {
            k: v for k, v in matched.items() if k not in ("LR", "SAVE_PATH")}
    assert ("minillm", "sft-continued-student-lr", False) in declared_comparisons(["sft", "sft-continued",
                                                                                    "sft-continued-student-lr", "minillm"])


def test_row_caps_are_stages_and_flags_only_when_set(tmp_path):
    _, default = plan_for(tmp_path, METHODS="default")
    _, capped = plan_for(tmp_path, METHODS="default", MAX_TRAIN_ROWS="40", MAX_EVAL_ROWS="5")
    work = tmp_path / "work"
    assert not [stage for stage in default.stages if stage.name.startswith("cap-")]
    assert capped.stage("cap-train-rows").command[-6:] == ["--keep-first", "200", "--max-rows", "40", "--out",
                                                          f"{work}/results/tiny/data/train-rows/raw.jsonl"]
    assert "--max-rows" in capped.stage("cap-dss-rows").command
    assert capped.stage("seqkd-data").env["DATA_DIR"] == f"{work}/results/tiny/data/train-rows"
    assert capped.stage("dss-teacher-data").env["INPUT"] == f"{work}/results/tiny/data/dss-capped/raw.jsonl"
    assert capped.stage("eval-sft-seed10").command[-2:] == ["--max-eval-rows", "5"]
    changed = {stage.name for stage in default.stages
               if (stage.command, stage.env) != (capped.stage(stage.name).command, capped.stage(stage.name).env)}
    assert "teacher" not in changed and {"process", "eval-teacher-seed10"} <= changed


def test_teacher_cache_top_k_adds_a_cache_stage_per_dataset_and_changes_only_the_kd_arms(tmp_path):
    _, live = plan_for(tmp_path, METHODS="kd dss-kd")
    _, cached = plan_for(tmp_path, METHODS="kd dss-kd", TEACHER_CACHE_TOP_K="64")
    caches = tmp_path / "work/results/tiny/teacher-cache"
    names = lambda plan: {stage.name for stage in plan.stages}  # noqa: E731
    assert names(cached) - names(live) == {"cache-teacher", "cache-dss-teacher-label", "cache-dss-teacher-rationale"}
    assert cached.stage("cache-teacher").env["TOP_K"] == "64"
    assert cached.stage("kd-forward_kl-seed10").env["KD_ARGS"] == f"--teacher-cache {caches}/teacher"
    assert (cached.stage("dss-kd-seed10").env["KD_ARGS"]
            == f"--teacher-cache {caches}/dss-teacher-label {caches}/dss-teacher-rationale")
    assert {stage.name for stage in live.stages if stage.env != cached.stage(stage.name).env} == {
        "kd-forward_kl-seed10", "dss-kd-seed10"}


def test_the_stories_preset_plans_its_own_pipeline(tmp_path):
    llama2c = tmp_path / "stories260K"
    llama2c.mkdir()
    (llama2c / "stories260K.bin").write_bytes(b"")
    settings, plan = plan_for(tmp_path, "stories", LLAMA2C_DIR=str(llama2c), STEPS="40")
    assert [stage.name for stage in plan.stages] == ["teacher", "student-init", "data", "seqkd", "kd_forward_kl",
                                                     "kd_reverse_kl", "minillm", "compare"]
    results = tmp_path / "work/results/stories"
    assert plan.stage("minillm").env["INIT_PATH"] == f"{results}/seqkd/20"
    assert plan.stage("minillm").env["TOTAL_STEPS"] == "20"
    for student in ("seqkd", "kd_forward_kl", "kd_reverse_kl"):  # one budget, one init
        assert plan.stage(student).env["EXTRA_ARGS"] == "--total-steps 40 --resume"
    assert [p.name for p in plan.producers(plan.stage("minillm"))] == ["teacher", "data", "seqkd"]
    assert not preflight.settings_problems(settings, plan)
    settings, plan = plan_for(tmp_path, "stories", LLAMA2C_DIR=str(tmp_path / "absent"))
    assert "needs llama2.c's stories260K" in preflight.settings_problems(settings, plan)[0]


def test_the_label_only_arms_train_the_dss_label_task_alone_as_dss_controls(tmp_path):
    """The DSS paper's baselines: the label stream its DSS arm reads, without the rationale stream,
    from the same init for the same epochs; each is its DSS arm's declared control."""
    _, plan = plan_for(tmp_path, METHODS="label-sft label-distill dss dss-gold")
    for arm, dss in (("label-sft", "dss-gold"), ("label-distill", "dss")):
        env, dss_env = stage_env(plan, f"{arm}-seed10"), stage_env(plan, f"{dss}-seed10")
        assert env["DATA_DIR"] == dss_env["DATA_DIR"] and env["DATA_DIR"].endswith("/full/label/tiny"), arm
        assert "RATIONALE_DATA_DIR" not in env and "LABEL_WEIGHT" not in env and "RATIONALE_DATA_DIR" in dss_env
        for name in ("MODEL_PATH", "LR", "EPOCHS", "TRAIN_FRACTION", "SEED", "BATCH_SIZE", "DS_CONFIG"):
            assert env[name] == dss_env[name], (arm, name)
        assert plan.stage(f"{arm}-seed10").inputs[1] == Path(env["DATA_DIR"])  # the label folder alone
        assert f"eval-{arm}-seed10" in [stage.name for stage in plan.stages]
    comparisons = declared_comparisons(["sft", "label-sft", "label-distill", "dss", "dss-gold"])
    assert {("dss", "label-distill", True), ("dss-gold", "label-sft", True), ("label-sft", "sft", False),
            ("label-distill", "sft", False)} <= set(comparisons)
    assert "label-sft" not in registry.default_arms()


def test_the_token_matched_control_reads_dss_rationales_only_to_size_its_steps(tmp_path):
    """DSS trains on ~1.4× the tokens of its label task: the token-matched control trains the
    label task alone with its steps scaled by DSS's tokens (train_sft.py --token-matched-to), an
    exploratory comparison beside DSS's declared control."""
    settings, plan = plan_for(tmp_path, METHODS="label-distill label-distill-tokens dss")
    env, dss_env = stage_env(plan, "label-distill-tokens-seed10"), stage_env(plan, "dss-seed10")
    assert env["DATA_DIR"] == dss_env["DATA_DIR"] and env["TOKEN_MATCHED_TO"] == dss_env["RATIONALE_DATA_DIR"]
    assert "RATIONALE_DATA_DIR" not in env and "TOKEN_MATCHED_TO" not in stage_env(plan, "label-distill-seed10")
    for name in ("MODEL_PATH", "LR", "EPOCHS", "TRAIN_FRACTION", "SEED", "BATCH_SIZE"):
        assert env[name] == dss_env[name], name
    comparisons = declared_comparisons(["sft", "label-distill", "label-distill-tokens", "dss"])
    assert ("dss", "label-distill-tokens", False) in comparisons and ("dss", "label-distill", True) in comparisons


def test_the_registry_the_report_and_the_checks_agree():
    assert {key.removeprefix("kd-") for key in METHODS if key.startswith("kd-")} == set(DIVERGENCES)
    assert "kd-alpha_beta" in METHODS and "kd-alpha_beta" in registry.method_order(["kd-alpha_beta", "sft"])
    every_arm, _ = select(["all"], sorted(DIVERGENCES))
    assert set(every_arm) == set(registry.arms())
    for key in registry.arms():
        method = METHODS[key]
        assert (REPO / method.launcher).is_file() and (REPO / method.entrypoint).is_file(), key
        assert method.recipe in registry.RECIPES and method.trains_on in registry.TRAINING_DATA, key
        assert method.continues is None or method.continues in registry.arms(), key
        assert method.control is None or METHODS[method.control].continues == method.continues, key
    assert set(registry.choices()) == {key for key in registry.arms() if not METHODS[key].group} | {
        "kd", "all", "default"}
    with pytest.raises(SelectionError, match="METHODS names 'kd-forward_kl'"):
        select(["kd-forward_kl"], ["forward_kl"])  # a divergence is chosen through KD_LOSSES
    table = registry.markdown_table()
    assert all(f"| `{key}`" in table for key in registry.arms())


def test_a_new_arm_is_one_registry_entry(tmp_path, monkeypatch):
    """A toy arm declared only in the registry: the plan trains and evaluates it per seed, the
    checks accept it, the report labels its row."""
    toy = Method("Toy SFT", "baseline", "random init", "cross-entropy, toy", "gold labels", registry.GOLD_LABELS,
                 launcher="scripts/gpt2/sft/sft_base.sh", entrypoint="train_sft.py",
                 variables=lambda s: {"EPOCHS": 1})
    monkeypatch.setitem(METHODS, "toy", toy)
    settings, plan = plan_for(tmp_path, METHODS="toy", TRAIN_SEEDS="10 20")
    names = [stage.name for stage in plan.stages]
    assert {"toy-seed10", "toy-seed20", "eval-toy-seed10", "eval-toy-seed20"} <= set(names)
    assert plan.stage("toy-seed20").env["EPOCHS"] == "1" and plan.stage("toy-seed20").env["SEED"] == "20"
    assert "toy" in registry.choices() and not preflight.settings_problems(settings, plan)
    root = tmp_path / "results"
    for run in ("seed10", "seed20"):
        write_summary(root, "toy", run, {"tiny": {"rougeL": [40.0, 41.0, 42.0]}})
    write_json(root / "driver.json", plan.record | {"evaluations": [
        {"method": "toy", "run": run, "path": f"eval/toy/{run}"} for run in ("seed10", "seed20")]})
    rows = {method["key"]: method for method in build_comparison(load_results(root))["methods"]}
    assert rows["toy"]["label"] == "Toy SFT" and rows["toy"]["family"] == "baseline"


def test_no_stage_runs_the_report_layer(tmp_path):
    """A stage's fingerprint hashes every module its program imports: so that an edit to the method
    registry or the report (minillm/experiments) reruns nothing, no stage's program imports them."""
    _, plan = plan_for(tmp_path, METHODS="all")
    for stage in plan.stages:
        assert not [path for path in code_files(stage) if path.parts[:2] == ("minillm", "experiments")], stage.name


def fake_run(plan, book: StageBook) -> list[str]:
    """Every stage that is not skipped "runs" by writing its name into each output: the stages'
    records, fingerprints and swaps are the real ones, the commands are not run. Returns the
    names of the stages that ran."""
    ran = []
    read = {path for stage in plan.stages for path in stage.inputs}
    for stage in plan.stages:
        decision = book.decide(stage)
        if decision.skip:
            continue
        book.begin(decision)
        for final, output in decision.building.items():
            output.mkdir(parents=True)
            (output / "made-by").write_text(stage.name)
            for inside in (path for path in read if final in path.parents):  # what later stages read in it
                (output / inside.relative_to(final)).mkdir(parents=True, exist_ok=True)
        book.complete(decision, 0.0)
        ran.append(stage.name)
    return ran


def test_an_edited_config_template_or_setting_reruns_exactly_the_stages_that_read_it(tmp_path):
    base = tmp_path / "repo"
    for folder in ("configs", "prompts"):
        shutil.copytree(REPO / folder, base / folder)
    environ = {"METHODS": "all", "TRAIN_SEEDS": "10 20"}
    settings, plan = plan_for(tmp_path, base=base, **environ)
    book = StageBook(settings.results / "stages", ContentHashes(None))
    assert fake_run(plan, book) == [stage.name for stage in plan.stages]
    assert fake_run(plan, book) == []  # nothing changed: every stage is skipped

    def rerun(**changed: str) -> set[str]:
        _, again = plan_for(tmp_path, base=base, **environ, **changed)
        return {stage.name for stage in again.stages if not book.decide(stage).skip}

    training = {stage.name for stage in plan.stages if stage.kind == "train"}
    config = settings.ds_config
    config.write_text(json.dumps({**json.loads(config.read_text()), "gradient_clipping": 0.01}))
    assert rerun() == training
    config.write_text((REPO / "configs/deepspeed/zero1_fp32.json").read_text())
    template = base / "prompts/rationales/dss_rationale.txt"
    template.write_text(template.read_text().replace("[rationale]", "[why]"))
    assert rerun() == {"dss-teacher-data"}
    template.write_text((REPO / "prompts/rationales/dss_rationale.txt").read_text())
    # (the epoch-based reference recipes take the preset's student learning rate on tiny)
    students = {f"{arm}-seed{seed}" for arm in ("sft", "kd-forward_kl", "seqkd", "uld", "aligned-kd", "label-sft",
                                                 "label-distill", "label-distill-tokens", "dss", "dss-gold", "dss-kd", "distillm-ref",
                                                 "abkd-ref", "sft-continued-ref", "sft-continued-student-lr",
                                                 "dss-continued-student-lr")
                for seed in (10, 20)}  # the control arms at the students' rate read it too
    assert rerun(STUDENT_LR="1e-3") == students
    assert rerun(TEACHER_LR="1e-3") == {"teacher"}
    assert rerun(LABEL_WEIGHT="0.3") == {f"{arm}-seed{seed}" for arm in (
        "dss", "dss-gold", "dss-kd", "dss-continued", "dss-continued-student-lr", "dss-minillm") for seed in (10, 20)} | {
        "dss-teacher"}
    assert rerun() == set()


def test_reference_recipes_run_the_authors_flags_after_the_launchers_scaled_on_tiny_only(tmp_path):
    """A reference arm's flags come last on its command line (argparse keeps the last value), so the
    authors' values replace the controlled recipe's; the corpus term is on exactly where the authors
    have one. On tiny the recipe's `scaled` flags take the preset's values, on gpt2 the authors'."""
    _, plan = plan_for(tmp_path, METHODS="gkd-ref opd-ref distillm-ref abkd-ref")
    env = {key: stage_env(plan, f"{key}-seed10") for key in ("gkd-ref", "opd-ref", "distillm-ref", "abkd-ref")}
    assert {key: value["PTX"] for key, value in env.items()} == {"gkd-ref": "0", "opd-ref": "0", "distillm-ref": "1",
                                                                 "abkd-ref": "1"}
    assert env["gkd-ref"]["EXTRA_ARGS"].startswith("--resume --kd-ratio 1.0 --kd-loss js_divergence")
    assert "--response-temperature 0.9 --response-max-new-tokens 48" in env["gkd-ref"]["EXTRA_ARGS"]  # 128 > budget
    assert "--samples-per-prompt 4 --loss-reduction sum" in env["opd-ref"]["EXTRA_ARGS"]
    assert "--lr 0.00175" in env["distillm-ref"]["EXTRA_ARGS"] and "--epochs 6" in env["distillm-ref"]["EXTRA_ARGS"]  # the students' epochs
    assert env["abkd-ref"]["EXTRA_ARGS"].endswith("--ptx-kd-ratio 0.0")  # the corpus term is plain CE
    # their control keeps ABKD's recipe (optimizer, epochs, corpus CE) with CE in place of the divergence
    _, controlled = plan_for(tmp_path, METHODS="sft-continued-ref distillm-ref")
    control = stage_env(controlled, "sft-continued-ref-seed10")
    assert control["EXTRA_ARGS"].endswith("--ptx-kd-ratio 0.0 --kd-ratio 0.0") and control["PTX"] == "1"
    assert "--epochs 6" in control["EXTRA_ARGS"] and "--lr-scheduler cosine" in control["EXTRA_ARGS"]
    from minillm.experiments.comparison import declared_comparisons
    assert ("distillm-ref", "sft-continued-ref", False) in declared_comparisons(
        ["sft", "sft-continued-ref", "distillm-ref", "abkd-ref", "gkd-ref"])
    assert ("abkd-ref", "sft-continued-ref", False) in declared_comparisons(["sft-continued-ref", "abkd-ref"])
    assert all(plan.stage(f"{key}-seed10").method == key for key in env)
    _, paper = plan_for(tmp_path, preset="gpt2", METHODS="distillm-ref")
    assert "--lr 5e-4" in stage_env(paper, "distillm-ref-seed10")["EXTRA_ARGS"]
    assert "--batch-size 128" in stage_env(paper, "distillm-ref-seed10")["EXTRA_ARGS"]
    assert "--epochs 20" in stage_env(paper, "distillm-ref-seed10")["EXTRA_ARGS"]


def test_checkpoint_candidates_give_every_arm_as_many_evaluations(tmp_path):
    """CHECKPOINT_CANDIDATES: every arm (not the peers' reference recipes, which validate as their
    authors do) picks its best checkpoint among the same number of evenly spaced evaluations."""
    _, plan = plan_for(tmp_path, METHODS="all", CHECKPOINT_CANDIDATES="2")
    trained = [stage for stage in plan.stages if stage.kind == "train" and stage.method in registry.arms()]
    assert {"sft", "minillm", "sft-continued", "dss-minillm", "gkd-ref"} <= {stage.method for stage in trained}
    for stage in trained:
        flags = stage.env["EXTRA_ARGS"].split()
        assert (flags[1:3] == ["--evaluations", "2"]) == (METHODS[stage.method].reference is None), stage.name
    parser = cli.token_training_parser("")
    args = cli.validate(parser.parse_args(["--model-path", "m", "--data-dir", "d", "--save", "s", "--evaluations", "2"]))
    for steps in (64, 744, 745):  # an on-policy arm's steps, 8 and 8-and-a-bit epochs of 93 steps
        interval = cli.loop_config(args, steps, 93).eval_interval
        evaluated = [step for step in range(1, steps + 1) if step % interval == 0 or step == steps]
        assert len(evaluated) == 2 and evaluated[-1] == steps, steps
    _, paper = plan_for(tmp_path, "gpt2", METHODS="sft minillm")  # the paper's intervals: an epoch, 500 steps
    assert not [stage for stage in paper.stages if "--evaluations" in stage.env.get("EXTRA_ARGS", "")]
