"""The driver's checks before its first stage; every problem names the variable to change.

`settings_problems` needs only the settings (and the files they name): lengths that cannot fit,
a warm-up not shorter than the on-policy steps, caps below one batch, inputs a preset needs that
are not there. `model_problems` reads the teacher, student and tokenizer folders (for the tiny
preset: once its `inputs` stage has built them): sequences longer than a model's positions,
models that do not share the tokenizer the arms compare token by token, too few embedding rows.
"""
from __future__ import annotations

import json
from pathlib import Path

from collections.abc import Mapping

from minillm.experiments import costs
from minillm.experiments import methods as registry
from minillm.experiments.plan import PREFIX_ROOM, Plan, build_plan
from minillm.experiments.settings import InstructionSettings, SettingsError, StoriesSettings, load_settings

POSITION_FIELDS = ("n_positions", "max_position_embeddings")


class PlanError(ValueError):
    """Settings or METHODS that give no plan; the message is what the user reads."""


def load_plan(preset: str, base_path: Path, environ: Mapping[str, str], overrides: dict | None = None):
    """(settings, plan) for this preset and environment; PlanError when they give none."""
    try:
        settings = load_settings(preset, base_path, environ, overrides or {})
        return settings, build_plan(settings)
    except SettingsError as err:
        raise PlanError(f"the comparison cannot run with these settings (nothing was started):\n{err}") from err
    except registry.SelectionError as err:
        raise PlanError(str(err)) from err


def cost_estimate(s: InstructionSettings, plan: Plan) -> tuple[costs.PlanReport | None, str | None]:
    """The plan's cost report, or why there is none: the estimate informs, and the stages check
    their own inputs, so a report that cannot be made is a warning, never a refusal."""
    try:
        return costs.plan_report(s, plan), None
    except (OSError, ValueError, KeyError) as err:
        return None, f"no cost estimate ({type(err).__name__}: {err})"


def read_config(model_dir: Path, variable: str) -> dict:
    path = model_dir / "config.json"
    if not path.is_file():
        raise ValueError(f"{variable}={model_dir} has no config.json: not a Hugging Face model folder")
    return json.loads(path.read_text())


def positions(config: dict) -> int | None:
    """The longest sequence the model's position table holds; None when it sets no limit."""
    return next((int(config[name]) for name in POSITION_FIELDS if isinstance(config.get(name), int)), None)


def _runs_step_by_step(plan: Plan) -> bool:
    return any(registry.METHODS[key].training_set == "step-by-step" for key in plan.record.get("methods", ()))


def _runs_on_policy_recipe(plan: Plan) -> bool:
    return any(registry.METHODS[key].recipe != "student" for key in plan.record.get("methods", ()))


def settings_problems(s, plan: Plan) -> list[str]:
    if isinstance(s, StoriesSettings):
        problems = []
        if not (s.llama2c_dir / "stories260K.bin").is_file():
            problems.append(f"LLAMA2C_DIR={s.llama2c_dir} has no stories260K.bin: this preset needs llama2.c's "
                            f"stories260K (../shared/data/models/, see its README); point LLAMA2C_DIR at a copy")
        return problems + _common_problems(s)
    problems = _common_problems(s)
    if not 0 < s.max_prompt_length < s.max_length:
        problems.append(f"MAX_PROMPT_LENGTH={s.max_prompt_length} must be below MAX_LENGTH={s.max_length} "
                        f"(the difference is the generation budget)")
    if _runs_on_policy_recipe(plan):
        if s.minillm_warmup >= s.minillm_steps:
            problems.append(f"MINILLM_WARMUP={s.minillm_warmup} ≥ MINILLM_STEPS={s.minillm_steps}: MiniLLM and its "
                            f"control arms would never leave the warm-up (learning rate ≤ "
                            f"{s.minillm_steps}/{s.minillm_warmup} of MINILLM_LR), so they would barely move from "
                            f"their init; lower MINILLM_WARMUP (e.g. 0) or raise MINILLM_STEPS")
        if s.num_rollouts % s.mini_batch:
            problems.append(f"NUM_ROLLOUTS={s.num_rollouts} must be a multiple of MINI_BATCH={s.mini_batch} "
                            f"(a collection is split into whole mini-batches)")
    if s.max_train_rows is not None and s.max_train_rows < s.batch_size:
        problems.append(f"MAX_TRAIN_ROWS={s.max_train_rows} < BATCH_SIZE={s.batch_size}: the capped data cannot fill "
                        f"one global batch; raise MAX_TRAIN_ROWS or lower BATCH_SIZE")
    if s.dss_rationales == "dataset" and _runs_step_by_step(plan) and not (s.dss_source and s.dss_source_input):
        problems.append("DSS_RATIONALES=dataset needs DSS_SOURCE (synthetic, gsm8k, cqa or svamp) and DSS_SOURCE_INPUT")
    if s.preset != "tiny":  # the tiny preset builds its inputs in its first stage
        needed = [("RAW_DIR", s.raw_dir / "raw.jsonl"), ("TOKENIZER", s.tokenizer), ("TEACHER_INIT", s.teacher_init),
                  ("STUDENT_INIT", s.student_init), ("TEACHER_TOKENIZER", s.teacher_tokenizer)]
        needed += [("EVAL_DATA_ROOT", s.eval_data_root / name) for name in s.eval_sets]
        if s.ptx_text is not None and _runs_on_policy_recipe(plan):
            needed.append(("PTX_TEXT", s.ptx_text))
        elif s.ptx_data_dir is not None and _runs_on_policy_recipe(plan):
            needed.append(("PTX_DATA_DIR", s.ptx_data_dir))
        if s.dss_rationales == "dataset" and _runs_step_by_step(plan) and s.dss_source_input:
            needed.append(("DSS_SOURCE_INPUT", s.dss_source_input))
        problems += [f"{variable}: {path} does not exist (preset {s.preset}: see the README's paper-scale how-to "
                     f"and 'Your own models and data')" for variable, path in needed if not path.exists()]
    return problems


def _common_problems(s) -> list[str]:
    problems = []
    if not s.ds_config.is_file():
        problems.append(f"DS_CONFIG={s.ds_config} does not exist (configs/deepspeed/ holds ZeRO × precision configs)")
    return problems


def model_problems(s: InstructionSettings, plan: Plan) -> list[str]:
    """Checks that read the model and tokenizer folders."""
    try:
        return _length_problems(s, plan) + _tokenizer_problems(s, list(plan.record.get("methods", ())))
    except (OSError, ValueError) as err:
        return [str(err)]


def _length_problems(s: InstructionSettings, plan: Plan) -> list[str]:
    new_tokens = s.max_length - s.max_prompt_length
    demands = [  # (what runs, its longest sequence, how that adds up, the variable to lower, roles that run it)
        ("training and MiniLLM rollouts", s.max_length, f"MAX_LENGTH={s.max_length}", "MAX_LENGTH",
         ("teacher", "student")),
        ("evaluation and the DSS teacher's data", s.max_prompt_length + PREFIX_ROOM + new_tokens,
         f"MAX_PROMPT_LENGTH={s.max_prompt_length} + {PREFIX_ROOM} (task prefix) + {new_tokens} new tokens "
         f"(MAX_LENGTH − MAX_PROMPT_LENGTH)", "MAX_LENGTH", ("teacher", "student")),
    ]
    if s.dss_rationales == "teacher-fewshot" and _runs_step_by_step(plan):
        demands.append(("the teacher's few-shot rationales (DSS_RATIONALES=teacher-fewshot)",
                        s.fewshot_prompt_length + new_tokens,
                        f"FEWSHOT_PROMPT_LENGTH={s.fewshot_prompt_length} + {new_tokens} new tokens "
                        f"(MAX_LENGTH − MAX_PROMPT_LENGTH)", "FEWSHOT_PROMPT_LENGTH", ("teacher",)))
    problems = []
    for role, variable, model_dir in (("teacher", "TEACHER_INIT", s.teacher_init),
                                      ("student", "STUDENT_INIT", s.student_init)):
        limit = positions(read_config(model_dir, variable))
        for what, length, sum_text, remedy, roles in demands:
            if limit is not None and role in roles and length > limit:
                problems.append(f"{what}: {sum_text} = {length} tokens > the {role}'s {limit} positions "
                                f"({variable}={model_dir}); lower {remedy}, or use a model with more positions")
    return problems


def _tokenizer_problems(s: InstructionSettings, arms: list[str]) -> list[str]:
    from minillm.modeling import check_same_tokenizer, load_tokenizer  # transformers: only when the checks get here
    students = load_tokenizer(s.tokenizer)
    teachers = load_tokenizer(s.teacher_tokenizer) if s.teacher_tokenizer != s.tokenizer else students
    across = sorted(key for key in registry.arms() if not registry.METHODS[key].needs_shared_tokenizer)
    problems = []
    own = "TEACHER_TOKENIZER" if teachers is not students else "TOKENIZER"
    for variable, model_dir, name, folder, reference in (
            ("TEACHER_INIT", s.teacher_init, own, s.teacher_tokenizer, teachers),
            ("STUDENT_INIT", s.student_init, "TOKENIZER", s.tokenizer, students)):
        if not (model_dir / "tokenizer_config.json").is_file():
            problems.append(f"{variable}={model_dir} holds no tokenizer (the stages load it from each model "
                            f"folder); copy {name}'s files into it (tools/make_random_model.py does)")
            continue
        try:
            check_same_tokenizer(load_tokenizer(model_dir), reference)
        except ValueError as err:
            remedy = (f"; a teacher with a tokenizer of its own: TEACHER_TOKENIZER={model_dir} and METHODS from the "
                      f"arms that work across tokenizers ({' '.join(across)})"
                      if variable == "TEACHER_INIT" and s.teacher_tokenizer == s.tokenizer else "")
            problems.append(f"{variable}={model_dir} and {name}={folder} do not share a tokenizer: {err}{remedy}")
            continue
        rows = read_config(model_dir, variable).get("vocab_size")
        if isinstance(rows, int) and rows < len(reference):
            problems.append(f"{variable}={model_dir} has {rows} embedding rows (vocab_size) but {name} has "
                            f"{len(reference)} tokens")
    if teachers is not students:
        try:
            check_same_tokenizer(teachers, students)
            return problems
        except ValueError as err:
            difference = str(err)
        shared = [key for key in arms if registry.METHODS[key].needs_shared_tokenizer]
        if shared:
            problems.append(f"TEACHER_TOKENIZER={s.teacher_tokenizer} is not TOKENIZER={s.tokenizer} ({difference}): "
                            f"METHODS {' '.join(shared)} compare teacher and student token by token; across "
                            f"tokenizers choose from: {' '.join(across)}")
        if s.teacher_cache_top_k:
            problems.append(f"TEACHER_CACHE_TOP_K={s.teacher_cache_top_k}: the cache holds the teacher's scores over "
                            f"the students' vocabulary, which a teacher with another tokenizer has not; unset it")
    return problems
