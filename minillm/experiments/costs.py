"""The plan's cost and lengths, known before its first training stage (issue 26): each training,
generation and evaluation stage of the plan as a `budget.StageCost` from the models' shapes and
the data's token lengths, their time estimate on this machine, and the reference responses'
lengths against the generation budget. The driver prints them after its `inputs` stage (the
tiny preset builds its models there); `tools/preflight.py` prints them when the models exist.

Data stages (processing, rows, student inits, caches) count as their start-up each. The total is
the sum of the stages' times (what JOBS=1 takes) and the wall time the driver's schedule gives
with JOBS stages side by side (`budget.wall_seconds`); the probe runs on STAGE_THREADS threads,
as every stage does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from minillm.data.processing import read_jsonl
from minillm.data.rationale import convert_raw_row
from minillm.experiments import budget
from minillm.experiments import methods as registry
from minillm.experiments.plan import Plan, reference_values
from minillm.experiments.settings import InstructionSettings
from minillm.random_init import is_random_init
from minillm.recipes import DISTILLM

TEACHERS = ("teacher", "dss-teacher")  # rows (and training stages) of the teacher models


@dataclass(frozen=True)
class PlanReport:
    """What preflight says about a plan's cost and lengths."""
    estimates: list[budget.Estimate]
    gflops: float
    warnings: list[str]  # said before the first stage; the run goes on
    refusals: list[str]  # the run cannot give an answer worth its time: refused before the first stage
    data_stages: int = 0
    data_seconds: float = 0.0  # all of them
    wall_seconds: float | None = None  # with `jobs` stages side by side
    jobs: int = 1
    threads: int | None = None  # the probe's (STAGE_THREADS)

    @property
    def total_seconds(self) -> float:
        return sum(item.seconds for item in self.estimates) + self.data_seconds

    def table(self) -> str:
        return budget.estimate_table(self.estimates, self.gflops, self.data_stages, self.data_seconds,
                                     self.wall_seconds, self.jobs, self.threads)


def _rows(path: Path) -> list[dict]:
    return [row for _, row in read_jsonl(path)]  # lines end at "\n" only: U+2028 may sit inside a string


def _test_rows(s: InstructionSettings) -> list[dict]:
    rows = []
    for name in s.eval_sets:
        found = _rows(s.eval_data_root / name / "valid.jsonl")
        found = found[:s.max_eval_rows] if s.max_eval_rows is not None else found
        # a multi-answer row lists every valid output: its first stands for the length
        rows += [{**row, "output": row["output"][0] if isinstance(row["output"], list) else row["output"]}
                 for row in found]
    return rows


def _merged(label: budget.Data, rationale: budget.Data) -> budget.Data:
    """The two DSS tasks as one training set of the label rows' questions: a question brings its
    label row and, where it has one, its rationale row."""
    rows = label.rows + rationale.rows
    if not label.rows:
        return label
    return budget.Data(rows, (label.rows * label.prompt + rationale.rows * rationale.prompt) / rows,
                       (label.rows * label.response + rationale.rows * rationale.response) / rows, rows / label.rows)


def _runs_step_by_step(methods: list[str]) -> bool:
    return any(registry.METHODS[key].training_set == "step-by-step" for key in methods)


def plan_report(s: InstructionSettings, plan: Plan, gflops: float | None = None) -> PlanReport:
    """The plan's stages as costs with their estimated times, the lengths' findings and the
    warnings about the models (reads the tokenizer, the data and the model configs; probes this
    machine's matmul speed for about a second unless `gflops` is given)."""
    from minillm.modeling import load_tokenizer  # transformers: only when the checks get here

    tokenizer = load_tokenizer(s.tokenizer)
    teacher, student = budget.model_shape(s.teacher_init), budget.model_shape(s.student_init)
    raw = _rows(s.raw_dir / "raw.jsonl")
    dev_rows = raw[:s.dev_num]
    train_rows = raw[s.dev_num:][:s.max_train_rows] if s.max_train_rows is not None else raw[s.dev_num:]
    new_tokens = s.max_length - s.max_prompt_length
    methods = list(plan.record.get("methods", ()))

    def lengths(rows, response, what, prefix=""):
        return budget.check_lengths(tokenizer, rows, response, what, s.max_length, s.max_prompt_length, prefix)

    checks = [lengths(train_rows, budget.gold_response, "gold training responses")]
    train, dev = checks[0].data(), lengths(dev_rows, budget.gold_response, "validation responses").data()
    test = lengths(_test_rows(s), budget.gold_response, "eval-set references").data()
    # the DSS rows: a question's label row and its rationale row; a teacher's rationales (where the rows
    # carry none) are costed at the gold responses' lengths, as a trained teacher's SeqKD answers
    dss_label, dss = train, _merged(train, train)
    if _runs_step_by_step(methods) and all("rationale" in row and "answer" in row for row in train_rows):
        # rows that carry their own rationale (the tiny data, GSM8K converted): the DSS rows are theirs
        dss_rows = [convert_raw_row(row, str(index)) for index, row in enumerate(train_rows)]
        with_rationale = [row for row in dss_rows if row.get("rationale")]
        label = lengths(dss_rows, budget.gold_response, "DSS label responses", "[label] ")
        dss_label = label.data()
        if with_rationale:
            rationale = lengths(with_rationale, budget.chain_of_thought_response, "DSS chain of thought",
                                "[rationale] ")
            checks.append(rationale)
            dss = _merged(label.data(), rationale.data())
        else:
            dss = label.data()
    student_run = dict(dev=dev, eval_gen_num=s.eval_gen_num, new_tokens=new_tokens)
    on_policy = dict(steps=s.minillm_steps, num_rollouts=s.num_rollouts, mini_batch=s.mini_batch,
                     ppo_epochs=s.ppo_epochs, new_tokens=new_tokens, dev=dev, eval_gen_num=s.eval_gen_num)
    random_init_teacher = is_random_init(s.teacher_init)
    corpus = plan.record.get("pretraining_corpus") is not None  # the corpus terms run only with one
    costs, adaptive = [], []  # adaptive: (method, its cost with its sampling at the bound)
    shortfalls = []  # (message, certain) of the on-policy arms whose prompts may not fill a collection
    for stage in plan.stages:
        if stage.name == "teacher":
            costs.append(budget.token_training("teacher", "teacher-sft", teacher, train, s.teacher_epochs,
                                               s.batch_size, **student_run))
        elif stage.name == "dss-teacher":
            costs.append(budget.token_training("dss-teacher", "teacher-sft", teacher, dss, s.dss_teacher_epochs,
                                               s.batch_size, **student_run))
        elif stage.name in ("seqkd-data", "dss-teacher-data"):
            costs.append(budget.generation(stage.name, teacher, train, new_tokens))
        elif stage.kind == "eval":
            model = teacher if stage.method in TEACHERS else student
            costs.append(budget.evaluation(stage.name, model, test, new_tokens, len(s.eval_seeds),
                                           s.accuracy_decoding == "greedy"))
        elif stage.kind == "train" and stage.method in registry.METHODS:
            method = registry.METHODS[stage.method]
            data = train
            if method.training_set == "step-by-step":
                data = dss_label if method.label_only else dss
            passes = 1.0  # the token-matched label arm: as many passes over its items as DSS's tokens take
            if method.token_matched:
                passes = dss.rows * dss.sequence / (dss_label.rows * dss_label.sequence)
            if method.trains_on == "seqkd" and random_init_teacher:
                # the teacher's answers: a random-init teacher after a few epochs rarely stops before
                # the budget (as the seqkd-data stage's estimate assumes); a trained one writes
                # answers like the gold ones
                data = replace(data, response=new_tokens)
            if method.recipe == "on-policy":
                shortfalls.append(prompt_shortfall(stage.method, method, s, data))
            arm = (stage.name, method, s, student, teacher, data, student_run, on_policy, corpus, passes)
            costs.append(_arm_cost(*arm))
            bound = _arm_cost(*arm, adaptive_bound=True)
            if bound != costs[-1]:  # DistiLLM: its samples at p's fastest rise
                adaptive.append((stage.method, bound))
    gflops = gflops or budget.matmul_gflops(threads=s.stage_threads)
    estimates = budget.estimate(costs, gflops)
    seconds = {item.stage.name: item.seconds for item in estimates}
    data_stages = [stage.name for stage in plan.stages if stage.name not in seconds]
    data_seconds = budget.CALIBRATION.data_seconds(gflops)
    wall = budget.wall_seconds([(stage.name, seconds.get(stage.name, data_seconds),
                                 [producer.name for producer in plan.producers(stage)]) for stage in plan.stages],
                               s.jobs)
    warnings, refusals = budget.length_findings(checks)
    for message, certain in dict.fromkeys(item for item in shortfalls if item):
        (refusals if certain else warnings).append(message if certain else f"{message} (it may fail when it starts)")
    # the tiny preset's measured time, as this machine would take it now (the estimates scale alike)
    warning = budget.slow_run_warning(estimates, reference_s=budget.TINY_PRESET_SECONDS
                                      * budget.CALIBRATION.reference_gflops / gflops)
    if warning:
        warnings.append(warning)
    if adaptive:
        extra = sum(budget.CALIBRATION.seconds(bound, gflops) - seconds[bound.name] for _, bound in adaptive)
        warnings.append(f"{', '.join(sorted({key for key, _ in adaptive}))}: DistiLLM samples its own responses "
                        f"with a probability p that starts at 0 and rises by 0.1 only at a validation whose loss "
                        f"rose; costed with p at its start, its samples can add up to {budget.format_seconds(extra)} "
                        f"of stage time if p rises at every validation")
    if _runs_step_by_step(methods) and random_init_teacher:
        kept = [key for key in methods if registry.METHODS[key].training_set != "step-by-step"]
        warnings.append(f"TEACHER_INIT={s.teacher_init} is a random-init model (its random_init.json says so): "
                        f"after TEACHER_EPOCHS={s.teacher_epochs} of SFT it is unlikely to write chain of thought "
                        f"that parses, and the step-by-step arms' data stage (dss-teacher-data) then fails; "
                        f"without them: METHODS=\"{' '.join(kept)}\"")
    return PlanReport(estimates, gflops, warnings, refusals, len(data_stages), len(data_stages) * data_seconds, wall,
                      s.jobs, s.stage_threads)


def prompt_shortfall(key: str, method: registry.Method, s: InstructionSettings,
                     data: budget.Data) -> tuple[str, bool] | None:
    """(message, certain) when an on-policy arm's training prompts may not fill one collection: each
    draws its rollouts ÷ samples per prompt distinct prompts from the items TRAIN_FRACTION keeps (every
    task's prompt of an item: a DSS question brings its label and, where it has one, its rationale
    prompt), and the stage fails on too few only when it starts. Certain (a refusal) when even the
    most prompts an item can bring fall short; otherwise a warning when the mean number does (the
    fraction's own items decide). Rollouts as the stage gets them: the reference recipe's, else the
    arm's NUM_ROLLOUTS, else the preset's; 0 = one mini-batch."""
    values, variables = reference_values(method, s), method.variables(s) if method.variables else {}
    rollouts = int(values.get("num_rollouts", variables.get("NUM_ROLLOUTS", s.num_rollouts))) or int(
        values.get("batch_size", variables.get("MINI_BATCH", s.mini_batch)))
    samples = int(values.get("samples_per_prompt", 1))
    needed = rollouts // samples
    items = max(1, round(s.train_fraction * data.items))
    most, expected = items * math.ceil(data.per_item), round(items * data.per_item)
    if expected >= needed:
        return None
    draws = f"{rollouts} rollouts{f', {samples} per prompt' if samples > 1 else ''}"
    return (f"{key}: TRAIN_FRACTION={s.train_fraction:g} keeps {items} training items, "
            + (f"at most {most} prompts" if most < needed else f"about {expected} prompts")
            + f", fewer than the {needed} distinct prompts one collection draws ({draws}); raise TRAIN_FRACTION or "
            f"leave {key} out of METHODS", most < needed)


def teacher_terms(method: registry.Method, s: InstructionSettings, corpus: bool = True) -> tuple[float, float]:
    """The weights r of a train_kd.py arm's teacher terms, (on the task data, on the corpus chunks), as
    its stage passes them: its reference recipe's flags, else its stage variables (KD_RATIO,
    PTX_KD_RATIO), else the launcher's: a control arm's --kd-ratio 0 (the teacher serves its corpus
    term only) and the driver's PTX_KD_RATIO. r = 0: the teacher does not run there; `corpus` False
    (the plan has no pretraining corpus): no corpus term."""
    flags = reference_values(method, s)
    variables = method.variables(s) if method.variables else {}
    task = float(flags.get("kd_ratio", variables.get("KD_RATIO", 0.0)))
    on_corpus = method.corpus_term and corpus
    return task, float(flags.get("ptx_kd_ratio", variables.get("PTX_KD_RATIO", s.ptx_kd_ratio))) if on_corpus else 0.0


def sampled_share(method: registry.Method, s: InstructionSettings, steps: int, batch: int, evaluations: int,
                  adaptive_bound: bool = False) -> tuple[float, float]:
    """(student, teacher): the shares of a train_kd.py arm's optimizer steps whose responses the
    student, or the teacher, samples during training. GKD: λ for the student (its expectation: each
    step draws on-policy with probability λ) and, with GKD_OFF_POLICY=teacher, the rest for the
    teacher. DistiLLM: adaptive_share with p held at its start, or with `adaptive_bound` rising at
    every validation. (0, 0) for every other arm."""
    flags = reference_values(method, s)
    variables = method.variables(s) if method.variables else {}
    if flags.get("adaptive_sgo") or "SGO_LOSS_EPS" in variables:
        share = adaptive_share(steps, evaluations, batch // s.stage_gpus,
                               int(flags.get("sgo_capacity", variables.get("SGO_CAPACITY", s.sgo_capacity))),
                               flags.get("sgo_init_probability", DISTILLM["init_threshold"]),
                               rise=0.1 if adaptive_bound else 0.0)
        return share, 0.0
    student = float(flags.get("gkd_lambda", variables.get("GKD_LAMBDA", 0.0)))
    off_policy = flags.get("gkd_off_policy", variables.get("GKD_OFF_POLICY", "data"))
    return student, (1 - student if student and off_policy == "teacher" else 0.0)


def adaptive_share(steps: int, evaluations: int, rows_per_step: int, capacity: int, initial: float,
                   rise: float) -> float:
    """The expected share of steps that sample fresh student outputs under DistiLLM's rule
    (minillm/train/response_source.py, AdaptiveStudentOutputs): probability p while the replay
    buffer (`capacity` rows per rank, `rows_per_step` added by a sampling step) is not full, else
    p·(1 − step/steps); p starts at `initial` and rises by `rise` at each of the `evaluations`
    validations after the reference one at step 0 (evenly spaced, the last at the end): DistiLLM's
    0.1, at every one, is the fastest p can rise."""
    interval = steps / max(evaluations, 1)
    probability, filled, share, validation = initial, 0.0, 0.0, interval
    for step in range(steps):
        while step >= validation:
            probability, validation = min(1.0, probability + rise), validation + interval
        chance = probability if filled < capacity else probability * (1 - step / steps)
        share, filled = share + chance, filled + chance * rows_per_step
    return share / steps


def _arm_cost(name: str, method: registry.Method, s: InstructionSettings, student, teacher, data: budget.Data,
              student_run: dict, on_policy: dict, corpus: bool, passes: float = 1.0,
              adaptive_bound: bool = False) -> budget.StageCost:
    """One training seed of an arm: its recipe decides the shape of the work; `corpus`: the plan has a
    pretraining corpus (without one, no arm has a corpus term); `passes`: a token-level student's epochs
    count that many passes over its items (--token-matched-to; it validates once per pass);
    `adaptive_bound`: see sampled_share."""
    task_ratio, corpus_ratio = teacher_terms(method, s, corpus) if method.entrypoint == "train_kd.py" else (0.0, 0.0)
    live_teacher = teacher if method.teacher and task_ratio > 0 else None
    kind = "kd" if method.teacher and (task_ratio > 0 or corpus_ratio > 0) else "student-sft"  # a teacher loaded
    candidates = None if method.reference else s.checkpoint_candidates  # as plan.py passes --evaluations
    if method.recipe == "on-policy":
        chunk = s.max_length if method.corpus_term and corpus else 0
        interval = math.ceil(s.minillm_steps / candidates) if candidates else s.minillm_eval_interval
        return budget.on_policy(name, student, teacher, prompts=data, corpus_tokens=chunk,
                                **on_policy | {"eval_interval": interval})
    if method.recipe == "continued":  # MiniLLM's steps on its mini-batch, or a reference recipe's epochs
        flags = reference_values(method, s)
        authors_epochs = flags.get("epochs")
        if authors_epochs:  # validation once per epoch
            epochs, steps, batch, evaluations = authors_epochs, None, int(flags["batch_size"]), math.ceil(authors_epochs)
        else:
            epochs, steps, batch = None, s.minillm_steps, s.mini_batch
            evaluations = candidates or 1 + s.minillm_steps // max(s.minillm_eval_interval, 1)
        cost = budget.token_training(name, kind, student, data, epochs, batch, teacher=live_teacher,
                                     evaluations=evaluations, steps=steps, **student_run)
        # the responses sampled during training, one micro-batch at a time on each device
        new_tokens = min(flags.get("response_max_new_tokens") or student_run["new_tokens"], student_run["new_tokens"])
        rows_per_call = min(batch // s.stage_gpus, s.micro_batch_size)
        shares = sampled_share(method, s, cost.steps, batch, evaluations, adaptive_bound)
        for model, share in zip((student, teacher), shares):
            if share:
                rows = round(share * cost.steps * batch * data.per_item)  # every task row of a sampled step
                cost = cost.plus(budget.generation(name, model, replace(data, rows=rows), new_tokens,
                                                   rows_per_batch=rows_per_call))
        if not (method.corpus_term and corpus):
            return cost
        chunks = budget.Data(cost.steps * batch, 0, s.max_length)  # a batch of chunks per step, as many as its items
        term = budget.token_training(name, kind, student, chunks, 1, batch, teacher=teacher if corpus_ratio > 0 else None)
        return replace(cost, flops=cost.flops + term.flops, logit_elements=cost.logit_elements + term.logit_elements)
    # TRAIN_FRACTION keeps the whole set's optimizer steps (train_*.py --fraction-budget steps, the
    # driver's default): the fraction's rows are read as often as the whole set's would be.
    return budget.token_training(name, kind, student, data, s.student_epochs * passes, s.batch_size,
                                 teacher=live_teacher, evaluations=candidates, **student_run)
