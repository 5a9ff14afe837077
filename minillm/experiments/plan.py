"""Settings × methods × seeds → the comparison's stages, as data (pure: nothing runs here).

`build_plan(settings)` returns a `Plan`: stages in an order where every stage comes after the
stages that write its inputs, the evaluations the report reads, and the run's record
(driver.json). A shared stage (processing, the teachers, teacher-written data) is planned only
when a selected arm or evaluation reads what it writes (`PlanBuilder.need`), so METHODS=sft plans
no step-by-step data. Arms come from the registry (`methods.METHODS`); nothing here names one,
except the teachers the registry's `teacher` field points at.

Every stage gets exactly the variables its script reads (so a setting reruns only the stages that
read it), and the files it reads beside its data (DeepSpeed config, prompt templates) as inputs.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from minillm.experiments import methods as registry
from minillm.experiments.settings import InstructionSettings, StoriesSettings, describe, shell_text
from minillm.experiments.stages import Stage
from minillm.recipes import REFERENCE_RECIPES, reference_flags, shell_word

# Generation keeps a prompt's LAST tokens: room for a task prefix ("[label] ") in front of the
# longest prompts, so that it is never the part cut off.
PREFIX_ROOM = 16
TEMPLATES = Path("prompts/rationales")


@dataclass
class Evaluation:
    method: str
    run: str
    path: Path  # the eval output folder


@dataclass
class Plan:
    stages: list[Stage]
    evaluations: list[Evaluation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # said before the first stage
    record: dict = field(default_factory=dict)  # driver.json
    report: list[str] | None = None  # the command that writes the report at the end

    def stage(self, name: str) -> Stage:
        return next(stage for stage in self.stages if stage.name == name)

    def producers(self, stage: Stage) -> list[Stage]:
        """The stages that write what `stage` reads (an input that is, or lies inside, an output)."""
        found = []
        for other in self.stages:
            if other is stage:
                break
            if any(inp == out or out in inp.parents for inp in stage.inputs for out in other.outputs):
                found.append(other)
        return found


def _text(value) -> str:
    return repr(value) if isinstance(value, float) else shell_text(value)


def training_items(data_dir: Path) -> int | None:
    manifest = data_dir / "data_manifest.json"
    return json.loads(manifest.read_text())["splits"].get("train") if manifest.is_file() else None


def enough_items(data: Path, batch_size: int, stage: str, made_by: str) -> Callable:
    """A processing stage's post-condition: at least one global batch of training items."""
    def check(building: Callable[[Path], Path]) -> str | None:
        count = training_items(_inside(data, building))
        if count is None or count >= batch_size:
            return None
        return (f"stage {stage} made {count} training items in {data}, fewer than one global batch "
                f"(BATCH_SIZE={batch_size}); its input: {made_by}. Look there first (a teacher that writes no "
                f"usable rows, DEV_NUM taking every row, MAX_TRAIN_ROWS), then rerun the driver.")
    return check


def scaled_reference(key: str, s: InstructionSettings) -> dict[str, object] | None:
    """The values a preset gives a reference recipe's `scaled` flags: the tiny preset's own (its
    controlled arms' for the on-policy family, its student recipe's, epochs included, for the
    epoch-based ones);
    None elsewhere, where the authors' values stand (the gpt2 preset is their scale)."""
    if s.preset != "tiny":
        return None
    epoch_based = REFERENCE_RECIPES[key].flags.get("epochs") is not None
    values = {"lr": s.student_lr if epoch_based else s.minillm_lr,
              "batch_size": s.batch_size if epoch_based else s.mini_batch,
              "epochs": s.student_epochs, "warmup_steps": s.minillm_warmup,
              "total_steps": s.minillm_steps, "eval_interval": s.minillm_eval_interval,
              "response_max_new_tokens": min(REFERENCE_RECIPES[key].flags.get("response_max_new_tokens") or 0,
                                             s.max_length - s.max_prompt_length)}
    return {dest: values[dest] for dest in REFERENCE_RECIPES[key].scaled}


def reference_values(method: registry.Method, s: InstructionSettings) -> dict[str, object]:
    """The flag values of a method's reference recipe as its stage runs them on this preset (the
    authors', the preset's `scaled` ones, then the method's `reference_changes`): what the cost
    estimate reads. Empty for a method without one."""
    if not method.reference:
        return {}
    return {**REFERENCE_RECIPES[method.reference].flags, **(scaled_reference(method.reference, s) or {}),
            **dict(method.reference_changes)}


def _inside(path: Path, building: Callable[[Path], Path]) -> Path:
    """Where `path` (an output, or a path inside one) is while its stage builds."""
    for parent in [path, *path.parents]:
        moved = building(parent)
        if moved != parent:
            return moved / path.relative_to(parent)
    return path


class PlanBuilder:
    """The instruction-following comparison (presets tiny, gpt2, custom)."""

    def __init__(self, settings: InstructionSettings, arms: list[str]):
        self.s = settings
        self.arms = arms
        self.stages: list[Stage] = []
        self.products: dict[str, object] = {}
        self.runs = settings.results / "runs"
        self.first_seed = settings.train_seeds[0]
        self.new_tokens = settings.max_length - settings.max_prompt_length

    # --- helpers ------------------------------------------------------------------------------------------
    def add(self, stage: Stage) -> Stage:
        stage.threads = self.s.stage_threads
        self.stages.append(stage)
        return stage

    def need(self, product: str):
        """A shared product's path(s), planning the stages that make it the first time it is asked for."""
        if product not in self.products:
            self.products[product] = getattr(self, "_make_" + product.replace("-", "_"))()
        return self.products[product]

    def script(self, name: str, script: str, outputs: list[Path], inputs: list[Path], env: dict,
               programs: list[str], **options) -> Stage:
        variables = {key: _text(value) for key, value in env.items() if value is not None}
        return self.add(Stage(name, ["bash", script, str(self.s.base_path)], outputs, inputs, variables,
                              [Path(script), *map(Path, programs)], **options))

    def python(self, name: str, program: str, args: list, outputs: list[Path], inputs: list[Path],
               **options) -> Stage:
        return self.add(Stage(name, ["python", program, *map(_text, args)], outputs, inputs, {}, [Path(program)],
                              **options))

    def training_env(self) -> dict:
        """What every training script reads beside its own recipe."""
        s = self.s
        return {"DS_CONFIG": s.ds_config, "MAX_LENGTH": s.max_length, "MAX_PROMPT_LENGTH": s.max_prompt_length,
                "BATCH_SIZE": s.batch_size, "MICRO_BATCH_SIZE": s.micro_batch_size, "EVAL_GEN_NUM": s.eval_gen_num,
                "GPUS_PER_NODE": s.stage_gpus}

    @property
    def cross_tokenizer(self) -> bool:
        """The teacher has a tokenizer of its own: it trains on data in its tokens; text it writes
        is processed with the students' tokenizer."""
        return self.s.teacher_tokenizer != self.s.tokenizer

    def processing_env(self, tokenizer: Path | None = None) -> dict:
        s = self.s
        return {"MODEL_PATH": tokenizer or s.tokenizer, "MODEL_TYPE": s.preset, "DEV_NUM": s.dev_num,
                "WORKERS": s.workers, "MAX_PROMPT_LENGTH": s.max_prompt_length, "MAX_LENGTH": s.max_length}

    def failure_gate(self) -> str:
        rate = self.s.max_rationale_failure_rate
        return f" --max-failure-rate {_text(rate)}" if rate is not None else ""

    # --- shared products ----------------------------------------------------------------------------------
    def _make_inputs(self) -> None:
        s = self.s
        if s.preset != "tiny":
            return None
        sizes = [[f"--{name.replace('_', '-')}", getattr(s, name)] for name in ("n_train", "n_dev", "n_test", "n_pretrain")
                 if getattr(s, name) is not None]
        self.python("inputs", "tools/make_tiny_default.py",
                    ["--root", s.work, "--data-dir", s.raw_dir, "--tokenizer-dir", s.tokenizer,
                     "--teacher-dir", s.teacher_init, "--student-dir", s.student_init, *sum(sizes, [])],
                    [s.raw_dir, s.tokenizer, s.teacher_init, s.student_init], [])
        return None

    def _make_rows(self) -> Path:
        """The instruction rows every stage trains on or writes for: RAW_DIR, or its capped copy."""
        s = self.s
        self.need("inputs")
        if s.max_train_rows is None:
            return s.raw_dir
        out = s.results / "data/train-rows"
        self.python("cap-train-rows", "tools/cap_rows.py", ["--input", s.raw_dir / "raw.jsonl", "--keep-first",
                    s.dev_num, "--max-rows", s.max_train_rows, "--out", out / "raw.jsonl"], [out], [s.raw_dir])
        return out

    def _make_instruction(self) -> tuple[Path, Path]:
        return self._process_instruction("process", self.s.processed, self.s.tokenizer)

    def _make_teacher_instruction(self) -> Path:
        """The instruction data in the teacher's tokens (the students' unless TEACHER_TOKENIZER differs)."""
        if not self.cross_tokenizer:
            return self.need("instruction")[0]
        s = self.s
        return self._process_instruction("process-teacher", s.processed / "teacher-tokenizer", s.teacher_tokenizer)[0]

    def _process_instruction(self, name: str, processed: Path, tokenizer: Path) -> tuple[Path, Path]:
        s = self.s
        rows, full, prompt = self.need("rows"), processed / "full", processed / "prompt"
        self.script(name, "scripts/tools/process_data_dolly.sh", [full, prompt], [rows, tokenizer],
                    {"DATA_DIR": rows, "PROCESSED_DIR": full, "PROMPT_PROCESSED_DIR": prompt,
                     **self.processing_env(tokenizer)}, ["tools/process_data_dolly.py"],
                    check=enough_items(full / s.preset, s.batch_size, name,
                                       f"{rows}/raw.jsonl (RAW_DIR, DEV_NUM={s.dev_num} validation rows first)"))
        return full / s.preset, prompt / s.preset

    def _make_corpus(self) -> Path | None:
        s = self.s
        if s.ptx_text is None:
            return s.ptx_data_dir
        self.need("inputs")
        out = s.processed / "pretrain"
        self.script("process-pretrain", "scripts/tools/process_data_pretrain.sh", [out], [s.ptx_text, s.tokenizer],
                    {"DATA_PATH": s.ptx_text, "PROCESSED_DIR": out, "MODEL_PATH": s.tokenizer, "MODEL_TYPE": s.preset,
                     "CHUNK_LENGTH": s.max_length, "DEV_NUM": 10, "WORKERS": s.workers, "MAX_DOCS": s.max_docs},
                    ["tools/process_data_pretrain.py"])
        return out / s.preset

    def _make_teacher(self) -> Path:
        s = self.s
        full = self.need("teacher-instruction")
        run = self.runs / "teacher" / f"seed{self.first_seed}"
        self.script("teacher", "scripts/sft/sft_xlarge.sh", [run], [full, s.teacher_init, s.ds_config],
                    {"EXTRA_ARGS": "--resume", "DATA_DIR": full, "MODEL_PATH": s.teacher_init, "SAVE_PATH": run,
                     "SEED": self.first_seed, "LR": s.teacher_lr, "EPOCHS": s.teacher_epochs,
                     **self.training_env(), "MICRO_BATCH_SIZE": s.teacher_micro_batch},
                    ["train_sft.py"], resumable=True, kind="train", method="teacher", run=f"seed{self.first_seed}")
        return run

    def _make_seqkd(self) -> Path:
        s = self.s
        teacher, rows = self.need("teacher"), self.need("rows")
        raw, processed = s.results / "data/seqkd", s.processed / "seqkd"
        # the teacher's answers in the students' tokens (the script's default: the teacher's own tokenizer)
        tokenizer = {"TOKENIZER_PATH": s.tokenizer} if self.cross_tokenizer else {}
        self.script("seqkd-data", "scripts/tools/generate_data_seqkd.sh", [raw, processed],
                    [teacher, rows, *tokenizer.values()],
                    {"TEACHER_PATH": teacher, "DATA_DIR": rows, "SEQKD_DIR": raw, "PROCESSED_DIR": processed / "full",
                     "PROMPT_PROCESSED_DIR": processed / "prompt", **self.processing_env(), **tokenizer,
                     "MAX_NEW_TOKENS": self.new_tokens, "DTYPE": s.dtype},
                    ["tools/generate.py", "scripts/tools/process_data_dolly.sh", "tools/process_data_dolly.py"],
                    check=enough_items(processed / "full" / s.preset, s.batch_size, "seqkd-data",
                                       f"the teacher's answers in {raw}/raw.jsonl"))
        return processed / "full" / s.preset

    def _process_dss(self, name: str, rows: Path, out: Path, upstream: str, tokenizer: Path | None = None) -> Path:
        s = self.s
        tokenizer = tokenizer or s.tokenizer
        self.script(name, "scripts/tools/process_data_dss.sh", [out], [rows, tokenizer],
                    {"DATA_DIR": rows, "PROCESSED_DIR": out, **self.processing_env(tokenizer)},
                    ["tools/process_data_dolly.py"],
                    check=enough_items(out / "full/label" / s.preset, s.batch_size, name,
                                       f"{rows}/raw.jsonl, written by stage {upstream} (DEV_NUM={s.dev_num} "
                                       f"validation rows first)"))
        return out

    def _derive(self, name: str, rows: Path, out: Path, flags: list[str]) -> Path:
        self.python(name, "tools/derive_rationale_rows.py", ["--input", rows / "raw.jsonl", "--out", out / "raw.jsonl",
                                                             *flags], [out], [rows])
        return out

    def _make_dss_rows(self) -> Path:
        """Rationale rows: the dataset's own, or written few-shot by the SFT teacher."""
        s = self.s
        out = s.results / "data/dss"
        if s.dss_rationales == "dataset":
            self.need("inputs")
            self.python("dss-rows", "tools/import_rationales.py", ["--source", s.dss_source, "--input",
                        s.dss_source_input, "--split", "train", "--out", out / "raw.jsonl"], [out], [s.dss_source_input])
            self.products["dss-rows-stage"] = "dss-rows"
            if s.max_train_rows is not None:
                capped = s.results / "data/dss-capped"
                self.python("cap-dss-rows", "tools/cap_rows.py", ["--input", out / "raw.jsonl", "--keep-first",
                            s.dev_num, "--max-rows", s.max_train_rows, "--out", capped / "raw.jsonl"], [capped], [out])
                self.products["dss-rows-stage"] = "cap-dss-rows"
                return capped
            return out
        teacher, rows = self.need("teacher"), self.need("rows")
        template = s.base_path / TEMPLATES / "fewshot_cot.txt"
        self.script("dss-rows", "scripts/tools/generate_rationales.sh", [out], [teacher, rows, template],
                    {"TEACHER_PATH": teacher, "INPUT": rows / "raw.jsonl", "OUT": out / "raw.jsonl",
                     "TEMPLATE": template, "DEV_NUM": s.dev_num, "MAX_PROMPT_LENGTH": s.fewshot_prompt_length,
                     "MAX_NEW_TOKENS": self.new_tokens, "DTYPE": s.dtype,
                     "GEN_ARGS": self.failure_gate().strip() or None, "GPUS_PER_NODE": s.stage_gpus},
                    ["tools/generate_rationales.py"])
        self.products["dss-rows-stage"] = "dss-rows"
        return out

    def _make_dss(self) -> Path:
        rows = self.need("dss-rows")
        return self._process_dss("process-dss", rows, self.s.processed / "dss", self.products["dss-rows-stage"])

    def _make_dss_teacher(self) -> Path:
        s = self.s
        # The DSS teacher learns the rationale task as chain of thought (each rationale ends "So the
        # answer is X."), so that it writes labels and rationales in ONE pass.
        teacher, rows = self.need("teacher"), self.need("dss-rows")
        cot = self._derive("dss-cot-rows", rows, s.results / "data/dss-cot", ["--chain-of-thought"])
        processed = self._process_dss("process-dss-cot", cot, s.processed / "dss-cot", "dss-cot-rows",
                                      s.teacher_tokenizer)
        run = self.runs / "dss-teacher" / f"seed{self.first_seed}"
        self.script("dss-teacher", "scripts/dss/dss_teacher_xlarge.sh", [run], [teacher, processed, s.ds_config],
                    {"EXTRA_ARGS": "--resume", "TEACHER_PATH": teacher, "DATA_DIR": processed / "full/label" / s.preset,
                     "RATIONALE_DATA_DIR": processed / "full/rationale" / s.preset, "SAVE_PATH": run,
                     "SEED": self.first_seed, "LR": s.dss_teacher_lr, "EPOCHS": s.dss_teacher_epochs,
                     "LABEL_WEIGHT": s.label_weight, **self.training_env(), "MICRO_BATCH_SIZE": s.teacher_micro_batch},
                    ["train_sft.py"], resumable=True, kind="train", method="dss-teacher", run=f"seed{self.first_seed}")
        return run

    def _make_dss_black_box_rows(self) -> tuple[Path, str]:
        """The rows the black-box step-by-step students learn from, and the stage that wrote them."""
        s = self.s
        if s.dss_rationales != "dataset":
            return self.need("dss-rows"), self.products["dss-rows-stage"]
        # Greedy chain of thought for the reasoning rows (label = its conclusion, written in the gold
        # labels' style); a label pass for the open-ended rows, which have no rationale.
        teacher, rows = self.need("dss-teacher"), self.need("dss-rows")
        out = s.results / "data/dss-teacher"
        templates = [s.base_path / TEMPLATES / "dss_rationale.txt", s.base_path / TEMPLATES / "dss_label.txt"]
        self.script("dss-teacher-data", "scripts/tools/generate_rationales.sh", [out], [teacher, rows, *templates],
                    {"TEACHER_PATH": teacher, "INPUT": rows / "raw.jsonl", "OUT": out / "raw.jsonl",
                     "TEMPLATE": templates[0], "LABEL_TEMPLATE": templates[1], "LABEL_PASS": "no-rationale",
                     "COT_LABEL_FORMAT": s.cot_label_format,
                     "GEN_ARGS": "--rationale-rows with-rationale --top-k 1" + self.failure_gate(),
                     "DEV_NUM": s.dev_num, "MAX_PROMPT_LENGTH": s.max_prompt_length + PREFIX_ROOM,
                     "MAX_NEW_TOKENS": self.new_tokens, "DTYPE": s.dtype, "GPUS_PER_NODE": s.stage_gpus},
                    ["tools/generate_rationales.py"])
        return out, "dss-teacher-data"

    def _make_dss_black_box(self) -> Path:
        rows, upstream = self.need("dss-black-box-rows")
        if self.s.dss_rationales != "dataset":
            return self.need("dss")
        return self._process_dss("process-dss-teacher", rows, self.s.processed / "dss-teacher", upstream)

    def _make_dss_gold(self) -> Path:
        rows, _ = self.need("dss-black-box-rows")
        gold = self._derive("dss-gold-rows", rows, self.s.results / "data/dss-gold", ["--labels", "gold"])
        return self._process_dss("process-dss-gold", gold, self.s.processed / "dss-gold", "dss-gold-rows")

    def _make_corpus_env(self) -> dict:
        corpus = self.need("corpus")
        return {"PTX": 1, "PTX_DATA_DIR": corpus} if corpus else {"PTX": 0}

    def teacher_cache(self, teacher: str, data: list[Path]) -> list[Path]:
        """TEACHER_CACHE_TOP_K: one teacher pass per dataset writes its top-k outputs."""
        s = self.s
        caches = []
        for path in data:
            stream = path.parent.name if teacher == "dss-teacher" else None
            name = f"cache-{teacher}" + (f"-{stream}" if stream else "")
            out = s.results / "teacher-cache" / name.removeprefix("cache-")
            if name not in self.products:
                teacher_run = self.need(teacher)
                self.script(name, "scripts/tools/cache_teacher.sh", [out], [teacher_run, path],
                            {"TEACHER_PATH": teacher_run, "DATA_DIR": path, "CACHE_DIR": out,
                             "TOP_K": s.teacher_cache_top_k, "MAX_LENGTH": s.max_length, "BATCH_SIZE": s.batch_size,
                             "GPUS_PER_NODE": s.stage_gpus}, ["tools/cache_teacher.py"], resumable=True)
                self.products[name] = out
            caches.append(out)
        return caches

    def student_init(self, seed: int) -> Path:
        s = self.s
        if not s.student_init_per_seed:
            self.need("inputs")
            return s.student_init
        out = s.work / "checkpoints/student-init" / f"seed{seed}"
        name = f"student-init-seed{seed}"
        if name not in self.products:
            self.need("inputs")
            self.python(name, "tools/make_random_model.py", ["--config", s.student_init, "--tokenizer", s.tokenizer,
                        "--seed", seed, "--out", out], [out], [s.student_init, s.tokenizer])
            self.products[name] = out
        return out

    # --- the arms -----------------------------------------------------------------------------------------
    def data_env(self, method: registry.Method) -> tuple[dict, list[Path]]:
        """The variables naming an arm's training data, and those folders."""
        s = self.s
        if method.trains_on == "instruction":
            full, _ = self.need("instruction")
            return {"DATA_DIR": full}, [full]
        if method.trains_on == "seqkd":
            data = self.need("seqkd")
            return {"DATA_DIR": data}, [data]
        if method.trains_on == "prompts":
            _, prompts = self.need("instruction")
            return {"PROMPT_DATA_DIR": prompts}, [prompts]
        folder = {"dss": "dss", "dss-black-box": "dss-black-box", "dss-gold": "dss-gold",
                  "dss-prompts": "dss"}[method.trains_on]
        processed = self.need(folder)
        kind = "prompt" if method.trains_on == "dss-prompts" else "full"
        label, rationale = processed / kind / "label" / s.preset, processed / kind / "rationale" / s.preset
        first = "PROMPT_DATA_DIR" if kind == "prompt" else "DATA_DIR"
        if method.token_matched:
            return {first: label, "TOKEN_MATCHED_TO": rationale}, [processed]
        if method.label_only:
            return {first: label}, [label]
        return {first: label, "RATIONALE_DATA_DIR": rationale, "LABEL_WEIGHT": s.label_weight}, [processed]

    def arm(self, key: str, seed: int) -> Stage:
        s, method = self.s, registry.METHODS[key]
        run = self.runs / key / f"seed{seed}"
        candidates = ("--evaluations", s.checkpoint_candidates) if s.checkpoint_candidates and not method.reference else ()
        env: dict = {"EXTRA_ARGS": " ".join(map(str, ("--resume", *candidates, *method.extra_args))), "SEED": seed}
        inputs: list[Path] = []
        if method.continues:
            init = self.runs / method.continues / f"seed{seed}"
            env["INIT_PATH"] = init
        else:
            init = self.student_init(seed)
            env["MODEL_PATH"] = init
        inputs.append(init)
        data_env, data = self.data_env(method)
        env.update(data_env)
        inputs += data
        if method.teacher:
            teacher = self.need(method.teacher)
            env["TEACHER_PATH"] = teacher
            inputs.append(teacher)
        env["TRAIN_FRACTION"] = s.train_fraction  # every recipe: its training questions, or their prompts
        if method.recipe == "student":
            env.update(LR=s.student_lr, EPOCHS=s.student_epochs)
        else:
            env.update(LR=s.minillm_lr, WARMUP_STEPS=s.minillm_warmup, TOTAL_STEPS=s.minillm_steps,
                       EVAL_INTERVAL=s.minillm_eval_interval, PTX_KD_RATIO=s.ptx_kd_ratio)
            corpus = self.need("corpus-env")
            env.update(corpus)
            if "PTX_DATA_DIR" in corpus:
                inputs.append(corpus["PTX_DATA_DIR"])
            if method.recipe == "continued":
                env["BATCH_SIZE"] = s.mini_batch
            else:
                env.update(NUM_ROLLOUTS=s.num_rollouts, MINI_BATCH=s.mini_batch, PPO_EPOCHS=s.ppo_epochs,
                           ROLLOUT_BATCH_SIZE=s.rollout_batch_size, TEACHER_MIX_ALPHA=s.teacher_mix_alpha)
        if method.variables:
            env.update(method.variables(s))
        if method.reference:
            changes = [word for dest, value in method.reference_changes
                        for word in ("--" + dest.replace("_", "-"), shell_word(value))]
            env["EXTRA_ARGS"] = " ".join((env["EXTRA_ARGS"], *reference_flags(method.reference, scaled_reference(
                method.reference, s)), *changes))
        if s.teacher_cache_top_k and method.group == "kd" or (s.teacher_cache_top_k and key == "dss-kd"):
            caches = self.teacher_cache(method.teacher, [Path(env["DATA_DIR"])] + (
                [Path(env["RATIONALE_DATA_DIR"])] if "RATIONALE_DATA_DIR" in env else []))
            env["KD_ARGS"] = " ".join(filter(None, [str(env.get("KD_ARGS") or ""), "--teacher-cache",
                                                    *map(str, caches)]))
            inputs += caches
        env = {**self.training_env(), **{k: v for k, v in env.items() if k not in ("BATCH_SIZE",)},
               "BATCH_SIZE": env.get("BATCH_SIZE", s.batch_size)}
        inputs.append(s.ds_config)
        return self.script(f"{key}-seed{seed}", method.launcher, [run], inputs, {**env, "SAVE_PATH": run},
                           [method.entrypoint], resumable=True, kind="train", method=key, run=f"seed{seed}")

    def evaluate(self, method: str, run: str, model: Path) -> Evaluation:
        s = self.s
        out = s.results / "eval" / method / run
        sets = [s.eval_data_root / name for name in s.eval_sets]
        args = ["--model-path", model, "--pick", "rougeL", "--name", f"{method}/{run}", "--data-root",
                s.eval_data_root, "--eval-sets", *s.eval_sets, "--seeds", *s.eval_seeds, "--save", out,
                "--max-new-tokens", self.new_tokens, "--max-prompt-length", s.max_prompt_length + PREFIX_ROOM,
                "--dtype", s.dtype, "--accuracy-decoding", s.accuracy_decoding]
        if s.eval_no_repeat_ngram:
            args += ["--no-repeat-ngram-size", s.eval_no_repeat_ngram]
        if s.max_eval_rows is not None:
            args += ["--max-eval-rows", s.max_eval_rows]
        self.python(f"eval-{method}-{run}", "evaluate.py", args, [out], [model, *sets], kind="eval",
                    method=method, run=run, gpus=s.stage_gpus)
        return Evaluation(method, run, out)

    def build(self, notes: list[str]) -> Plan:
        s = self.s
        for seed in s.train_seeds:
            for key in self.arms:
                self.arm(key, seed)
        evaluations = [self.evaluate("untrained", "init", self.student_init(self.first_seed)),
                       self.evaluate("teacher", f"seed{self.first_seed}", self.need("teacher"))]
        if any(registry.METHODS[key].training_set == "step-by-step" for key in self.arms):
            evaluations.append(self.evaluate("dss-teacher", f"seed{self.first_seed}", self.need("dss-teacher")))
        for seed in s.train_seeds:
            for key in self.arms:
                evaluations.append(self.evaluate(key, f"seed{seed}", self.runs / key / f"seed{seed}"))
        plan = Plan(self.stages, evaluations, notes)
        plan.record = self.record(evaluations)
        plan.report = ["python", "tools/report.py", str(s.results)]
        return plan

    def record(self, evaluations: list[Evaluation]) -> dict:
        """driver.json: what the report needs to say about this run beyond its results."""
        s = self.s
        selected = set(self.arms)
        not_run = [name for name in registry.choices() if name not in ("all", "default") and not (
            name in selected or any(registry.METHODS[key].group == name for key in selected))]
        capped = f" (first {s.max_train_rows} training rows)" if s.max_train_rows else ""
        if s.dss_rationales == "dataset":
            dss_data = f"{s.dss_source} rationale rows from {s.dss_source_input}{capped}"
        else:
            dss_data = f"rationales the SFT teacher writes few-shot for {s.raw_dir}{capped}"
        return {"preset": s.preset, "methods": list(self.arms), "methods_not_run": not_run,
                "train_seeds": list(s.train_seeds),
                "data_sources": {"instruction": f"{s.raw_dir}{capped}", "step-by-step": dss_data},
                "pretraining_corpus": str(self.products.get("corpus") or "") or None,
                "max_train_rows": s.max_train_rows, "max_eval_rows": s.max_eval_rows,
                "teacher_cache_top_k": s.teacher_cache_top_k,
                "evaluations": [{"method": e.method, "run": e.run,
                                 "path": e.path.relative_to(s.results).as_posix()} for e in evaluations],
                "stages": [stage.name for stage in self.stages],
                "settings": {name: value for name, value, _ in describe(s)}}


def build_plan(settings) -> Plan:
    if isinstance(settings, StoriesSettings):
        return stories_plan(settings)
    arms, notes = registry.select(settings.methods, settings.kd_losses)
    return PlanBuilder(settings, arms).build(notes)


def stories_plan(s: StoriesSettings) -> Plan:
    """llama2.c's stories260K teacher distilled into a smaller random-init Llama of the same
    vocabulary; each student gets the same init and the same budget (STEPS optimizer steps):
    seqkd (SFT on the teacher's samples), kd_forward_kl / kd_reverse_kl (word-level KD on the same
    samples), minillm (from the seqkd run at STEPS/2, then STEPS/2 MiniLLM steps); then each
    student's forward/reverse KL to the teacher on held-out teacher samples and Rouge-L against the
    teacher's continuations (tools/compare_to_teacher.py)."""
    stages: list[Stage] = []
    max_prompt = s.prompt_tokens + 1
    max_length = max_prompt + s.continuation_tokens
    shared = {"DS_CONFIG": s.ds_config, "MAX_PROMPT_LENGTH": max_prompt, "MAX_LENGTH": max_length,
              "BATCH_SIZE": s.batch_size, "MICRO_BATCH_SIZE": s.micro_batch_size, "EVAL_INTERVAL": s.steps // 2,
              "EVAL_GEN_NUM": -1, "GPUS_PER_NODE": s.stage_gpus}

    def add(name, command, outputs, inputs, code, env=None, **options):
        stages.append(Stage(name, command, outputs, inputs, {k: _text(v) for k, v in (env or {}).items()},
                            [Path(c) for c in code], threads=s.stage_threads, **options))

    add("teacher", ["python", "tools/convert_llama2c.py", "--checkpoint", str(s.llama2c_dir / "stories260K.bin"),
                    "--tokenizer", str(s.llama2c_dir / "tok512.bin"), "--out", str(s.teacher)],
        [s.teacher], [s.llama2c_dir], ["tools/convert_llama2c.py"])
    add("student-init", ["python", "tools/make_llama_student.py", "--teacher", str(s.teacher), "--out",
                         str(s.student_init), *s.student_shape.split()],
        [s.student_init], [s.teacher], ["tools/make_llama_student.py"])
    add("data", ["python", "tools/make_stories_data.py", "--teacher", str(s.teacher), "--out", str(s.processed),
                 "--num-train", str(s.num_train), "--num-valid", str(s.num_valid), "--num-test", str(s.num_test),
                 "--prompt-tokens", str(s.prompt_tokens), "--continuation-tokens", str(s.continuation_tokens)],
        [s.processed], [s.teacher], ["tools/make_stories_data.py"])
    token_run = {**shared, "EXTRA_ARGS": f"--total-steps {s.steps} --resume", "MODEL_PATH": s.student_init,
                 "DATA_DIR": s.processed / "full", "LR": s.lr}
    runs = {"seqkd": s.results / "seqkd"}
    add("seqkd", ["bash", "scripts/seqkd/seqkd_base.sh", str(s.base_path)], [runs["seqkd"]],
        [s.processed, s.student_init, s.ds_config], ["scripts/seqkd/seqkd_base.sh", "train_sft.py"],
        {**token_run, "SAVE_PATH": runs["seqkd"], "KD_RATIO": 0}, resumable=True, kind="train")
    for loss in ("forward_kl", "reverse_kl"):
        runs[f"kd_{loss}"] = s.results / f"kd_{loss}"
        add(f"kd_{loss}", ["bash", "scripts/kd/kd_base.sh", str(s.base_path)], [runs[f"kd_{loss}"]],
            [s.processed, s.student_init, s.teacher, s.ds_config], ["scripts/kd/kd_base.sh", "train_kd.py"],
            {**token_run, "SAVE_PATH": runs[f"kd_{loss}"], "TEACHER_PATH": s.teacher, "KD_LOSS": loss,
             "KD_RATIO": s.kd_ratio}, resumable=True, kind="train")
    # One collection = 128 rollouts, 2 PPO epochs of mini-batches of BATCH_SIZE: 8 steps.
    runs["minillm"] = s.results / "minillm"
    add("minillm", ["bash", "scripts/minillm/train_base_xl.sh", str(s.base_path)], [runs["minillm"]],
        [runs["seqkd"], s.teacher, s.processed, s.ds_config], ["scripts/minillm/train_base_xl.sh", "train_minillm.py"],
        {**shared, "EXTRA_ARGS": "--resume", "INIT_PATH": runs["seqkd"] / str(s.steps // 2), "TEACHER_PATH": s.teacher,
         "PROMPT_DATA_DIR": s.processed / "prompt", "PTX": 0, "SAVE_PATH": runs["minillm"], "LR": s.minillm_lr,
         "WARMUP_STEPS": 0, "TOTAL_STEPS": s.steps // 2, "NUM_ROLLOUTS": 128, "MINI_BATCH": s.batch_size,
         "PPO_EPOCHS": 2, "ROLLOUT_BATCH_SIZE": 128, "EVAL_GEN_NUM": s.num_valid}, resumable=True, kind="train")
    models = [f"init={s.student_init}"] + [f"{name}={path}" for name, path in runs.items()]
    add("compare", ["python", "tools/compare_to_teacher.py", "--teacher", str(s.teacher), "--data-dir",
                    str(s.processed / "full"), "--split", "test", "--models", *models, "--seeds",
                    *map(str, s.eval_seeds), "--max-new-tokens", str(s.continuation_tokens), "--out", str(s.results / "comparison"),
                    "--note", f"Teacher: llama2.c stories260K; students from one random init, {s.steps} steps of "
                              f"{s.batch_size} sequences each;",
                    "--note", f"minillm starts from the seqkd run at step {s.steps // 2}; its {s.steps // 2} steps "
                              f"complete the budget.",
                    "--note", f"seqkd = SFT on the teacher's samples; kd_* = (1 - {s.kd_ratio})·CE + "
                              f"{s.kd_ratio}·KL on the same samples."],
        [s.results / "comparison"], [s.teacher, s.processed, s.student_init, *runs.values()],
        ["tools/compare_to_teacher.py"], kind="eval")
    record = {"preset": "stories", "stages": [stage.name for stage in stages],
              "settings": {name: value for name, value, _ in describe(s)}}
    return Plan(stages, [], [], record)
