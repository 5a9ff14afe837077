"""The comparison driver's settings: typed, one default each, validated before the first stage.

A preset (tiny, gpt2, custom, stories) is a table of defaults over the paper's recipes
(`minillm/recipes.py`); an environment variable of a setting's name (upper case: `STUDENT_LR`,
`TRAIN_SEEDS`) overrides the preset, parsed by the setting's type and checked against its range.
Every problem is reported at once, each naming its variable:

    settings = load_settings("tiny", base_path, os.environ)      # raises SettingsError

`python -m minillm.experiments.settings --markdown PRESET` prints the variables table of a preset;
`python -m minillm.experiments.settings --shell PRESET [BASE_PATH]` prints its settings, with the
environment's overrides, as shell assignments (for scripts that run a stage of the comparison by
hand, e.g. benchmarks/cache_vs_live.sh).
"""
from __future__ import annotations

import math
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from minillm.recipes import DISTILLM, DSS, DSS_TEACHER, GKD, KD, MINILLM, SFT, TEACHER


class SettingsError(Exception):
    """Settings the driver cannot run with; one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(f"  - {problem}" for problem in problems))
        self.problems = problems


# --- checks: each returns a problem (without the variable's name) or None -------------------------------------

def positive(value) -> str | None:
    return None if value is None or value > 0 else "must be > 0"


def non_negative(value) -> str | None:
    return None if value is None or value >= 0 else "must be ≥ 0"


def unit_interval(value) -> str | None:
    return None if value is None or 0 <= value <= 1 else "must be in [0, 1]"


def fraction(value) -> str | None:
    return None if value is None or 0 < value <= 1 else "must be in (0, 1]"


def percent(value) -> str | None:
    return None if value is None or 0 <= value <= 100 else "must be a percentage in [0, 100]"


def one_of(*choices: str) -> Callable:
    def check(value) -> str | None:
        return None if value is None or value in choices else f"must be one of: {' '.join(choices)}"
    return check


def distinct_positive_list(values) -> str | None:
    if not values:
        return "must name at least one value"
    if any(value < 0 for value in values):
        return "must hold non-negative integers"
    return "holds a value twice" if len(set(values)) != len(values) else None


def non_empty(values) -> str | None:
    return None if values else "must not be empty"


def setting(help: str, check: Callable | None = None):
    return field(default=None, metadata={"help": help, "check": check})


@dataclass(frozen=True)
class DriverSettings:
    """What every preset shares: where things go and how stages are executed."""

    preset: str = field(default="tiny", metadata={"help": "the preset whose defaults apply", "check": None})
    base_path: Path = field(default=Path("."), metadata={"help": "the repository root", "check": None})
    work: Path = setting("root of data/, checkpoints/, processed_data/ and results/; one driver at a time (locked)")
    results: Path = setting("the run's results folder: stages/, runs/, eval/, logs/, driver.json, comparison.*")
    stage_threads: int = setting("CPU threads of every stage (fixed, so results do not depend on JOBS)", positive)
    stage_gpus: int = setting("GPUs of every stage (GPUS_PER_NODE, the launcher's third argument)", positive)
    executor: str = setting("local (a pool of JOBS processes), slurm (one SLURM job per stage, through "
                            "submitit) or submitit-local (the same code path as slurm, jobs as local "
                            "processes)", one_of("local", "slurm", "submitit-local"))
    jobs: int = setting("stages run side by side (default: what the machine allows: cores / STAGE_THREADS, or "
                        "GPUs / STAGE_GPUS; with EXECUTOR=slurm, 64 jobs queued or running)", positive)
    slurm_partition: str | None = setting("executor slurm: the partition")
    slurm_time: int = setting("executor slurm: each stage job's time limit in minutes", positive)
    slurm_args: str | None = setting("executor slurm: more sbatch parameters, KEY=VALUE words (e.g. account=me "
                                     "qos=high)")
    eval_seeds: tuple[int, ...] = setting("generation seeds of every evaluation", distinct_positive_list)
    ds_config: Path = setting("the DeepSpeed config of every training stage (ZeRO stage, precision)")
    batch_size: int = setting("global batch (sequences per optimizer step) of the token-level stages", positive)
    micro_batch_size: int = setting("per-device micro-batch bound (accumulation covers the rest)", positive)


@dataclass(frozen=True)
class InstructionSettings(DriverSettings):
    """The instruction-following comparison (presets tiny, gpt2, custom)."""

    raw_dir: Path = setting("instruction data: raw.jsonl (instruction, input, output; the first DEV_NUM rows "
                            "are the validation split)")
    eval_data_root: Path = setting("the folder holding one sub-folder per eval set (MiniLLM's layout)")
    eval_sets: tuple[str, ...] = setting("eval set names under EVAL_DATA_ROOT", non_empty)
    processed: Path = setting("processed (tokenised) data")
    teacher_init: Path = setting("the teacher's model folder before its SFT")
    student_init: Path = setting("the students' model folder (with STUDENT_INIT_PER_SEED=1: only its "
                                 "architecture; each seed draws its own weights)")
    tokenizer: Path = setting("the students' tokenizer (and the teacher's, unless TEACHER_TOKENIZER differs)")
    teacher_tokenizer: Path = setting("the teacher's tokenizer; another than TOKENIZER: the teacher trains on data "
                                      "in its own tokens and only the arms that work across tokenizers run "
                                      "(black-box, uld, aligned-kd; docs/cross-tokenizer.md)")
    student_init_per_seed: bool = setting("1: each training seed draws its own random student init")
    dev_num: int = setting("validation rows at the head of RAW_DIR/raw.jsonl", non_negative)
    n_train: int | None = setting("tiny: training questions generated (tests shrink it)", positive)
    n_dev: int | None = setting("tiny: validation questions generated", positive)
    n_test: int | None = setting("tiny: test questions generated", positive)
    n_pretrain: int | None = setting("tiny: pretraining documents generated", positive)
    ptx_text: Path | None = setting("MiniLLM's pretraining corpus as text, one document per line (empty: "
                                    "PTX_DATA_DIR or none)")
    ptx_data_dir: Path | None = setting("an already processed pretraining corpus (empty: none, unless PTX_TEXT)")
    max_docs: int = setting("documents of PTX_TEXT processed (0: all)", non_negative)
    dss_rationales: str = setting("where step-by-step rationales come from: dataset (DSS_SOURCE rows) or "
                                  "teacher-fewshot (the SFT teacher writes them)", one_of("dataset", "teacher-fewshot"))
    dss_source: str | None = setting("DSS_RATIONALES=dataset: synthetic, gsm8k, cqa or svamp",
                                     one_of("synthetic", "gsm8k", "cqa", "svamp"))
    dss_source_input: Path | None = setting("DSS_RATIONALES=dataset: the source's files")
    cot_label_format: str = setting("how a label the DSS teacher's chain of thought concludes is written")
    fewshot_prompt_length: int = setting("DSS_RATIONALES=teacher-fewshot: the few-shot prompt's token budget",
                                         positive)
    teacher_lr: float = setting("the teacher's SFT learning rate", positive)
    teacher_epochs: int = setting("the teacher's SFT epochs", positive)
    teacher_micro_batch: int = setting("the teacher's micro-batch bound", positive)
    dss_teacher_lr: float = setting("the two-task DSS teacher's learning rate", positive)
    dss_teacher_epochs: int = setting("the DSS teacher's epochs on top of the SFT teacher", positive)
    student_lr: float = setting("every token-level student's learning rate", positive)
    student_epochs: int = setting("every token-level student's epochs", positive)
    train_fraction: float = setting("the token-level students train on this fixed random fraction of their "
                                    "training questions, for the whole set's optimizer steps (data-efficiency "
                                    "curves, as the DSS reference)", fraction)
    minillm_lr: float = setting("the on-policy arms' and their control arms' learning rate", positive)
    minillm_steps: int = setting("optimizer steps the on-policy arms and their control arms add", positive)
    minillm_eval_interval: int = setting("their steps between evaluations (without CHECKPOINT_CANDIDATES)", positive)
    checkpoint_candidates: int | None = setting(
        "evaluations of every student's training run, evenly spaced, the last at the end: each arm picks its best "
        "checkpoint by validation Rouge-L among as many candidates (not the peers' reference recipes, which validate "
        "as their authors do; DistiLLM's adaptive rule also updates at each one); unset: each recipe's own interval "
        "(an epoch; MINILLM_EVAL_INTERVAL)", positive)
    minillm_warmup: int = setting("their warm-up steps", non_negative)
    num_rollouts: int = setting("MiniLLM: rollouts per collection (global)", positive)
    mini_batch: int = setting("MiniLLM: rollouts per optimizer step (global); the control arms' batch", positive)
    ppo_epochs: int = setting("MiniLLM: passes over each collection", positive)
    rollout_batch_size: int = setting("MiniLLM: prompts per sampling batch, per device", positive)
    teacher_mix_alpha: float = setting("MiniLLM: teacher-mixed sampling's α", unit_interval)
    ptx_kd_ratio: float = setting("the pretraining term's mix r: (1 − r)·CE + r·KD to the teacher (MiniLLM, its "
                                  "control arms, GKD, DistiLLM)", unit_interval)
    kd_losses: tuple[str, ...] = setting("word-level KD: one student per divergence", non_empty)
    kd_ratio: float = setting("word-level KD's mix r: (1 − r)·CE + r·D (KD, DSS-KD)", unit_interval)
    kd_args: str = setting("word-level KD's divergence parameters as flags (e.g. --skew-alpha 0.2)")
    label_weight: float = setting("step-by-step's α: α·L_label + (1 − α)·L_rationale", unit_interval)
    gkd_lambda: float = setting("GKD: the fraction of steps on the student's own samples", unit_interval)
    gkd_off_policy: str = setting("GKD: the other steps' responses: data or teacher", one_of("data", "teacher"))
    sgo_loss_eps: float = setting("DistiLLM: the validation-loss rise that raises its sampling probability",
                                  non_negative)
    sgo_capacity: int = setting("DistiLLM: replay buffer sequences per device", positive)
    eval_no_repeat_ngram: int = setting("evaluation: blocked repeated n-grams (0: pure ancestral sampling)",
                                        non_negative)
    eval_gen_num: int = setting("validation prompts sampled at each evaluation during training (0: all, -1: none)")
    accuracy_decoding: str = setting("answer accuracy from greedy decoding or every seed's samples",
                                     one_of("greedy", "sampled"))
    dtype: str = setting("precision of generation (evaluation, teacher-written data)", one_of("fp32", "bf16", "fp16"))
    max_length: int = setting("prompt + response tokens of training items and rollouts", positive)
    max_prompt_length: int = setting("prompt tokens (longer prompts are dropped in processing)", positive)
    workers: int = setting("tokenisation processes", positive)
    methods: tuple[str, ...] = setting("the arms to run, or all (see the methods table)", non_empty)
    train_seeds: tuple[int, ...] = setting("training seeds: every student once per seed (paired by seed)",
                                           distinct_positive_list)
    max_train_rows: int | None = setting("only the first N training questions (after DEV_NUM), teachers' data "
                                         "included", positive)
    max_eval_rows: int | None = setting("only the first N rows of each eval set are scored", positive)
    max_rationale_failure_rate: float | None = setting("percent of rows a teacher may fail to write a usable "
                                                       "rationale / label for (default: the tool's 50)", percent)
    teacher_cache_top_k: int | None = setting("KD and DSS-KD read a top-k cache of their teacher (one pass) "
                                              "instead of running it", positive)


@dataclass(frozen=True)
class StoriesSettings(DriverSettings):
    """The stories preset: llama2.c's stories260K distilled into a smaller random-init Llama."""

    llama2c_dir: Path = setting("the folder with stories260K.bin and tok512.bin")
    teacher: Path = setting("the converted teacher's model folder")
    student_init: Path = setting("the student's random init")
    processed: Path = setting("the teacher-written data")
    student_shape: str = setting("tools/make_llama_student.py's shape flags")
    num_train: int = setting("teacher-written training sequences", positive)
    num_valid: int = setting("validation sequences", positive)
    num_test: int = setting("test sequences", positive)
    prompt_tokens: int = setting("tokens of each story's opening (after BOS)", positive)
    continuation_tokens: int = setting("tokens the teacher continues with", positive)
    steps: int = setting("optimizer steps of every student", positive)
    lr: float = setting("the token-level students' learning rate", positive)
    kd_ratio: float = setting("word-level KD's mix r: (1 − r)·CE + r·KL", unit_interval)
    minillm_lr: float = setting("MiniLLM's learning rate", positive)


# --- presets: a default per setting, a value or a function of the settings resolved before it ----------------

def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _machine_jobs(v: Mapping) -> int:
    """Stages side by side on this machine: one per STAGE_GPUS GPUs, else one per STAGE_THREADS cores
    (on a cluster: as many jobs as a queue usually takes)."""
    if v["executor"] == "slurm":
        return SLURM_JOBS
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = len([d for d in visible.split(",") if d.strip()]) if visible else _gpu_count()
    if gpus:
        return max(1, gpus // v["stage_gpus"])
    return max(1, _cpu_count() // v["stage_threads"])


def _gpu_count() -> int:
    if "torch" not in sys.modules and not Path("/proc/driver/nvidia").exists():
        return 0  # no NVIDIA driver: skip importing torch (seconds) just to learn that
    import torch
    return torch.cuda.device_count()


SLURM_JOBS = 64
DRIVER_DEFAULTS = {
    "stage_threads": lambda v: _cpu_count(), "stage_gpus": 1, "jobs": _machine_jobs, "executor": "local",
    "slurm_partition": None, "slurm_time": 24 * 60, "slurm_args": None,
    "batch_size": SFT["batch_size"], "micro_batch_size": SFT["micro_batch_size"],
    "ds_config": lambda v: v["base_path"] / "configs/deepspeed/zero1_bf16.json",
}
GPT2 = {  # the MiniLLM paper's scale (ref §3, §6, §7); inputs prepared as README's paper-scale how-to says
    **DRIVER_DEFAULTS,
    "work": lambda v: v["base_path"], "results": lambda v: v["work"] / "results/gpt2/comparison",
    "raw_dir": lambda v: v["work"] / "data/dolly", "eval_data_root": lambda v: v["work"] / "data",
    "eval_sets": ("dolly", "self-inst", "vicuna", "sinst", "uinst"),
    "processed": lambda v: v["work"] / "processed_data/dolly",
    "tokenizer": lambda v: v["work"] / "checkpoints/gpt2-base", "teacher_tokenizer": lambda v: v["tokenizer"],
    "teacher_init": lambda v: v["work"] / "checkpoints/gpt2-xl",
    "student_init": lambda v: v["work"] / "checkpoints/gpt2-base", "student_init_per_seed": False,
    "dev_num": 1000, "n_train": None, "n_dev": None, "n_test": None, "n_pretrain": None,
    "ptx_text": None, "ptx_data_dir": lambda v: v["work"] / "processed_data/openwebtext/gpt2", "max_docs": 0,
    # Dolly has no rationales: the SFT teacher writes them few-shot (prompts/rationales/fewshot_cot.txt).
    "dss_rationales": "teacher-fewshot", "dss_source": None, "dss_source_input": None,
    "cot_label_format": "{label}", "fewshot_prompt_length": 768,
    "teacher_lr": TEACHER["lr"], "teacher_epochs": TEACHER["epochs"], "teacher_micro_batch": TEACHER["micro_batch_size"],
    "dss_teacher_lr": DSS_TEACHER["lr"], "dss_teacher_epochs": DSS_TEACHER["epochs"],
    "student_lr": SFT["lr"], "student_epochs": SFT["epochs"], "train_fraction": 1.0,
    "minillm_lr": MINILLM["lr"], "minillm_steps": MINILLM["total_steps"],
    "minillm_eval_interval": MINILLM["eval_interval"], "minillm_warmup": MINILLM["warmup_steps"],
    "num_rollouts": MINILLM["num_rollouts"], "mini_batch": MINILLM["batch_size"], "ppo_epochs": MINILLM["ppo_epochs"],
    "rollout_batch_size": MINILLM["rollout_batch_size"], "teacher_mix_alpha": MINILLM["teacher_mix_alpha"],
    "ptx_kd_ratio": MINILLM["ptx_kd_ratio"], "kd_losses": ("forward_kl",), "kd_ratio": KD["kd_ratio"], "kd_args": "",
    "label_weight": DSS["label_weight"], "gkd_lambda": GKD["lambda"], "gkd_off_policy": GKD["off_policy"],
    "sgo_loss_eps": DISTILLM["loss_eps"], "sgo_capacity": DISTILLM["capacity"],
    "eval_seeds": (10, 20, 30, 40, 50), "eval_no_repeat_ngram": 6,  # MiniLLM's final evaluation (ref §7)
    "eval_gen_num": 1000, "accuracy_decoding": "greedy", "dtype": "fp32",
    "max_length": SFT["max_length"], "max_prompt_length": SFT["max_prompt_length"], "workers": 8,
    "methods": ("default",), "train_seeds": (10,), "max_train_rows": None, "max_eval_rows": None,
    "max_rationale_failure_rate": None, "teacher_cache_top_k": None, "checkpoint_candidates": None,
}
TINY = {  # the embedded default, sized for 2 CPU cores
    **GPT2,
    "stage_threads": 1,  # tiny models: one thread per stage, and stages side by side
    "work": lambda v: v["base_path"], "results": lambda v: v["work"] / "results/tiny",
    "raw_dir": lambda v: v["work"] / "data/tiny", "eval_data_root": lambda v: v["work"] / "data",
    "eval_sets": ("tiny",), "processed": lambda v: v["work"] / "processed_data/tiny",
    "tokenizer": lambda v: v["work"] / "checkpoints/tiny-tokenizer",
    "teacher_init": lambda v: v["work"] / "checkpoints/tiny-teacher",
    "student_init": lambda v: v["work"] / "checkpoints/tiny-student", "student_init_per_seed": True,
    "dev_num": 200, "ptx_text": lambda v: v["raw_dir"] / "pretrain.txt", "ptx_data_dir": None,
    # The dataset's own rationales (the reasoning families) teach the two-task DSS teacher, which then
    # writes the black-box students' labels and rationales in one chain-of-thought pass.
    "dss_rationales": "dataset", "dss_source": "synthetic", "dss_source_input": lambda v: v["raw_dir"],
    "cot_label_format": "The answer is {label}.",
    # The teacher trains to competence (greedy answers right on ≥ 80% of every reasoning family); the
    # students get the budget the pilot (docs/pilot-tiny.md) found to leave SFT between chance + 15 and
    # the teacher − 15 points, so distillation has room to move it either way.
    "teacher_lr": 3e-3, "teacher_epochs": 10, "teacher_micro_batch": 32,
    "dss_teacher_lr": 1e-3, "dss_teacher_epochs": 2, "student_lr": 1.75e-3, "student_epochs": 6,
    "checkpoint_candidates": 2,  # every arm: its best of 2 evaluations (half-way, end) by validation Rouge-L
    # The main command's 15-minute budget holds MiniLLM's comparison (against SFT and its control arm);
    # METHODS=default runs every primary arm, METHODS=all every arm.
    "methods": ("sft", "sft-continued", "minillm"),
    # MiniLLM at this scale: 64 steps = 8 collections of 128 rollouts, 2 PPO epochs of mini-batches of 32.
    "minillm_lr": 5e-4, "minillm_steps": 64, "minillm_eval_interval": 32, "minillm_warmup": 0,
    "num_rollouts": 128, "mini_batch": 32, "ppo_epochs": 2,
    "eval_seeds": (10, 20, 30), "eval_no_repeat_ngram": 0, "eval_gen_num": 100,
    "ds_config": lambda v: v["base_path"] / "configs/deepspeed/zero1_fp32.json",
    "max_length": 128, "max_prompt_length": 80, "batch_size": 32, "micro_batch_size": 32, "workers": 1,
}
REQUIRED = "required"
CUSTOM = {  # your data and models, with the gpt2 preset's recipes
    **GPT2,
    "results": lambda v: v["work"] / "results/custom", "processed": lambda v: v["work"] / "processed_data/custom",
    "raw_dir": REQUIRED, "eval_data_root": REQUIRED, "eval_sets": REQUIRED, "teacher_init": REQUIRED,
    "student_init": REQUIRED, "tokenizer": lambda v: v["student_init"], "ptx_data_dir": None,
}
STORIES = {
    **DRIVER_DEFAULTS,
    # These models (40K–260K parameters) run much faster on one thread than on two.
    "stage_threads": 1,
    "work": lambda v: v["base_path"], "results": lambda v: v["work"] / "results/stories",
    "llama2c_dir": lambda v: v["base_path"] / "../shared/data/models/stories260K",
    "teacher": lambda v: v["work"] / "checkpoints/stories260K",
    "student_init": lambda v: v["work"] / "checkpoints/stories-student",
    "processed": lambda v: v["work"] / "processed_data/stories",
    # 2 layers × 32 wide, 4 heads (2 KV heads), SwiGLU 86: 39K parameters (teacher: 260K).
    "student_shape": "--layers 2 --dim 32 --heads 4 --kv-heads 2 --hidden-dim 86 --seed 0",
    "num_train": 2048, "num_valid": 64, "num_test": 256, "prompt_tokens": 24, "continuation_tokens": 40,
    "steps": 800, "lr": 3e-3, "kd_ratio": 0.5, "minillm_lr": 1e-3, "eval_seeds": (10, 20, 30),
    "ds_config": lambda v: v["base_path"] / "configs/deepspeed/zero1_fp32.json", "batch_size": 32,
    "micro_batch_size": 32,
}
# Where a preset's defaults come from when it takes them from another (said in the run's log).
INHERITED = {"custom": {name: "preset gpt2" for name, value in CUSTOM.items() if GPT2.get(name) is value}}
PRESETS: dict[str, tuple[type, dict]] = {"tiny": (InstructionSettings, TINY), "gpt2": (InstructionSettings, GPT2),
                                         "custom": (InstructionSettings, CUSTOM), "stories": (StoriesSettings, STORIES)}
# Why a required setting is needed, said when it is missing.
REQUIRED_HINTS = {"raw_dir": "a folder with raw.jsonl (instruction, input, output; validation rows first)",
                  "eval_data_root": "the folder holding one sub-folder per eval set",
                  "eval_sets": "eval set names under EVAL_DATA_ROOT", "teacher_init": "the teacher model folder",
                  "student_init": "the student model folder"}


# --- parsing ------------------------------------------------------------------------------------------------

def env_name(name: str) -> str:
    return name.upper()


def _parse(text: str, kind, base_path: Path):
    """One environment value by its setting's type; raises ValueError with the reason."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if not text.strip():
            return None
        (kind,) = [arg for arg in args if arg is not type(None)]
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is tuple:
        if "," in text:
            raise ValueError("separate the values with spaces, not commas")
        return tuple(_parse(word, args[0], base_path) for word in text.split())
    if kind is bool:
        if text.strip() not in ("0", "1"):
            raise ValueError("must be 0 or 1")
        return text.strip() == "1"
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("not an integer") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return value
    if kind is Path:
        if not text.strip():
            raise ValueError("must name a path")
        path = Path(text).expanduser()
        return path if path.is_absolute() else base_path / path
    return text


def load_settings(preset: str, base_path: Path, environ: Mapping[str, str],
                  overrides: Mapping[str, object] = ()) -> DriverSettings:
    """The preset's settings with the environment's overrides (then `overrides`, already typed),
    validated; SettingsError lists every problem."""
    if preset not in PRESETS:
        raise SettingsError([f"PRESET={preset!r}: choose from {', '.join(PRESETS)}"])
    cls, defaults = PRESETS[preset]
    hints = typing.get_type_hints(cls)
    values: dict = {"preset": preset, "base_path": base_path}
    sources: dict[str, str] = {}
    own = {spec.name for spec in fields(cls)}
    others = {spec.name for other, _ in PRESETS.values() for spec in fields(other)} - own
    problems = [f"{env_name(name)} does not apply to the {preset} preset: unset it"
                for name in sorted(others, key=lambda name: list(environ).index(env_name(name))
                                   if env_name(name) in environ else 0) if env_name(name) in environ]
    overrides = dict(overrides)
    for spec in fields(cls):
        if spec.name in values:
            continue
        name = env_name(spec.name)
        if spec.name in overrides:
            values[spec.name], sources[spec.name] = overrides[spec.name], "command line"
        elif name in environ:
            try:
                values[spec.name] = _parse(environ[name], hints[spec.name], base_path)
                sources[spec.name] = "environment"
            except ValueError as err:
                problems.append(f"{name}={environ[name]!r}: {err}")
                values[spec.name] = None
                continue
        else:
            default = defaults[spec.name]
            if default == REQUIRED:
                problems.append(f"set {name}: {REQUIRED_HINTS.get(spec.name, 'no default in preset ' + preset)}")
                values[spec.name] = None
                continue
            try:
                values[spec.name] = default(values) if callable(default) else default
            except (TypeError, KeyError):  # it depends on a setting that was refused above
                if not problems:
                    raise
                values[spec.name] = None
                continue
            sources[spec.name] = INHERITED.get(preset, {}).get(spec.name, "preset")
        check = spec.metadata.get("check")
        problem = check(values[spec.name]) if check and values[spec.name] is not None else None
        if problem:
            problems.append(f"{name}={environ.get(name, values[spec.name])!r}: {problem}")
    if problems:
        raise SettingsError(problems)
    settings = cls(**values)
    object.__setattr__(settings, "_sources", sources)
    return settings


def source_of(settings: DriverSettings, name: str) -> str:
    """Where a setting's value came from: preset, environment or command line."""
    return getattr(settings, "_sources", {}).get(name, "preset")


def shell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return " ".join(shell_text(item) for item in value)
    return str(value)


def describe(settings: DriverSettings) -> list[tuple[str, str, str]]:
    """(VARIABLE, value, source) of every setting, for the run's log."""
    return [(env_name(spec.name), shell_text(getattr(settings, spec.name)), source_of(settings, spec.name))
            for spec in fields(settings) if spec.name not in ("preset", "base_path")]


def markdown_table(preset: str) -> str:
    """The variables table of a preset (README): name, default, meaning."""
    cls, defaults = PRESETS[preset]
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    shown = {"base_path": Path("$BASE_PATH"), "work": Path("$WORK"), "raw_dir": Path("$RAW_DIR"),
             "student_init": Path("$STUDENT_INIT"), "tokenizer": Path("$TOKENIZER")}
    described = {"jobs": "what the machine allows", "stage_threads": "all cores"}
    for spec in fields(cls):
        if spec.name in ("preset", "base_path"):
            continue
        default = defaults[spec.name]
        if callable(default):
            text = described.get(spec.name) or shell_text(default(shown))
        else:
            text = "required" if default == REQUIRED else shell_text(default) or "unset"
        rows.append(f"| `{env_name(spec.name)}` | `{text}` | {spec.metadata['help']} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--markdown":
        print(markdown_table(argv[1]), end="")
        return 0
    if len(argv) in (2, 3) and argv[0] == "--shell":
        try:
            settings = load_settings(argv[1], Path(argv[2] if len(argv) == 3 else ".").resolve(), os.environ)
        except SettingsError as err:
            print(f"error: the settings of preset {argv[1]} are refused:\n{err}", file=sys.stderr)
            return 1
        import shlex
        print("\n".join(f"{name}={shlex.quote(value)}" for name, value, _ in describe(settings)))
        return 0
    print("usage: python -m minillm.experiments.settings --markdown PRESET | --shell PRESET [BASE_PATH]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
