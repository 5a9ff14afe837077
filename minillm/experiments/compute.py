"""Each arm's training compute, estimated in FLOPs from model shapes and token counts.

A forward pass costs 2·N FLOPs per token and a training step (forward + backward) 6·N (Kaplan et
al. 2020), N = the parameters a token meets in matrix multiplications: every layer's attention and
MLP weights plus the output projection (`matmul_parameters`; embedding lookups, norms, biases and
the attention over the context, 2·layers·context·width per token, are left out). Per training run
(means over an arm's finished runs; every term is linear in the counts), S = the student's N,
T = the teacher's:

  student training  6·S·(token-level runs: final.json "tokens", every input token of every batch,
                    generated responses included; on-policy runs: "rollout_tokens" × ppo_epochs)
                    + 6·S·"ptx_tokens" (the pretraining term)
  student sampling  2·S·"rollout_tokens" (on-policy runs, GKD, DistiLLM: one forward per sampled token)
  teacher scoring   2·T·(the tokens the teacher runs on live: "tokens" of a KD run without a teacher
                    cache, "rollout_tokens" of an on-policy run, "ptx_tokens" when the corpus term has
                    a KD part (ptx_kd_ratio > 0)) + 2·T·"teacher_sampled_tokens"
  teacher data      2·T·(one epoch of the teacher-written tokens, i.e. tokens by source ÷ epochs): the
                    teacher's pass that wrote them (prompt prefill + one step per generated token),
                    counted for the arm that first trains on them (a continued arm has it through its
                    init); + 2·T·(one epoch of "tokens") for a run that reads a teacher cache (the
                    pass that wrote the cache)
  with init         + the total of the arm whose student it continues

The teachers' own fine-tuning (6·T·"tokens" of their runs) is counted once, on their rows, and is
not in the students' totals: every distilled arm shares it, SFT needs none of it.
"""
from __future__ import annotations

import json
from pathlib import Path

from minillm.experiments.methods import Method

FORWARD_FLOPS_PER_PARAMETER = 2  # per token
TRAINING_FLOPS_PER_PARAMETER = 6  # forward + backward, per token
COMPONENTS = ("student_training", "student_sampling", "teacher_scoring", "teacher_data")
_GATED_MLP = ("llama", "mistral", "qwen2")  # three MLP matrices (gate, up, down)


class ShapeError(ValueError):
    """A model folder whose shape the estimate cannot read; the message says which and why."""


def matmul_parameters(config: dict) -> int:
    """N of a Hugging Face config.json: per layer the attention projections (q, k, v, o) and the
    MLP matrices, plus the output projection vocab × width (tied to the input embedding or not,
    every token passes through it)."""
    model_type = config.get("model_type")
    if model_type == "gpt2":
        width, layers = config["n_embd"], config["n_layer"]
        per_layer = 4 * width * width + 2 * width * (config.get("n_inner") or 4 * width)
    elif model_type in _GATED_MLP:
        width, layers = config["hidden_size"], config["num_hidden_layers"]
        heads = config["num_attention_heads"]
        kv_heads = config.get("num_key_value_heads") or heads
        head_dim = config.get("head_dim") or width // heads
        per_layer = 2 * width * heads * head_dim + 2 * width * kv_heads * head_dim + 3 * width * config[
            "intermediate_size"]
    else:
        raise ShapeError(f"model_type {model_type!r}: no parameter formula (known: gpt2, {', '.join(_GATED_MLP)})")
    return layers * per_layer + config["vocab_size"] * width


def model_config(path: str | Path) -> tuple[dict, Path]:
    """(config, its file) of a model folder, or of a training run folder's best checkpoint (its
    best.json; a run folder's own config.json holds the run's flags, not the model's)."""
    path = Path(path)
    config_file = path / "config.json"
    if config_file.is_file():
        config = json.loads(config_file.read_text())
        if "model_type" in config:
            return config, config_file
    best = path / "best.json"
    if best.is_file():
        for entry in json.loads(best.read_text()).values():
            checkpoint = path / entry["path"]  # relative to the run folder (an absolute path stays)
            if (checkpoint / "config.json").is_file():
                return model_config(checkpoint)
    raise ShapeError(f"{path}: no model config.json (with model_type), nor a best.json checkpoint holding one")


def model_shape(candidates: list[str | Path]) -> dict:
    """The first candidate folder whose shape reads: {"path", "model_type", "layers", "width",
    "vocab_size", "matmul_parameters"}; ShapeError listing why each failed."""
    reasons = []
    for candidate in dict.fromkeys(str(candidate) for candidate in candidates):
        try:
            config, config_file = model_config(candidate)
            parameters = matmul_parameters(config)
        except (ShapeError, OSError, json.JSONDecodeError) as err:
            reasons.append(str(err))
            continue
        except KeyError as err:
            reasons.append(f"{candidate}/config.json: no {err}")
            continue
        return {"path": str(config_file), "model_type": config["model_type"],
                "layers": config.get("n_layer", config.get("num_hidden_layers")),
                "width": config.get("n_embd", config.get("hidden_size")), "vocab_size": config["vocab_size"],
                "matmul_parameters": parameters}
    raise ShapeError("; ".join(reasons) or "no model folder recorded (eval summary model_path, run config)")


def teacher_key(method: Method) -> str | None:
    """Which teacher an arm's teacher terms run: its own, or the one that wrote its data."""
    if method.teacher:
        return method.teacher
    if any(source == "teacher-written" for _, source in method.streams):
        return "dss-teacher" if method.training_set == "step-by-step" else "teacher"
    return None


def _number(value) -> float:
    return float(value or 0)


def arm_flops(method: Method, budget: dict, run_config: dict | None, student: int | None,
              teacher: int | None) -> dict:
    """The FLOPs of one arm's mean training run by component (`COMPONENTS`) and their sum "own";
    "missing" says why a figure is None (an unknown shape, flag or count) instead of guessing.
    `budget`: minillm.experiments.comparison.training_budget (means over finished runs)."""
    result = {component: None for component in COMPONENTS} | {"own": None, "missing": None}
    if not budget.get("runs"):
        return result | {"missing": "no finished training run"}
    if student is None:
        return result | {"missing": "the student's shape is unknown"}
    config = run_config or {}
    on_policy = budget.get("tokens") is None and budget.get("rollout_tokens") is not None
    uses_teacher = teacher_key(method) is not None
    if uses_teacher and run_config is None:
        return result | {"missing": "the run's config.json is absent: which teacher terms ran is unknown"}
    if uses_teacher and teacher is None:
        return result | {"missing": "the teacher's shape is unknown"}
    tokens, rollout = _number(budget.get("tokens")), _number(budget.get("rollout_tokens"))
    ptx = _number(budget.get("ptx_tokens"))
    if on_policy:
        if "ppo_epochs" not in config:
            return result | {"missing": "the run's config.json has no ppo_epochs"}
        trained = rollout * config["ppo_epochs"]
        teacher_live = rollout
    else:
        trained = tokens
        teacher_live = tokens if config.get("kd_ratio", 0) > 0 and not config.get("teacher_cache") else 0.0
    teacher_live += ptx if config.get("ptx_kd_ratio", 0) > 0 else 0.0
    teacher_live += _number(budget.get("teacher_sampled_tokens"))
    written = (budget.get("tokens_by_source") or {}).get("teacher-written") if method.continues is None else None
    one_epoch_of = []  # token counts whose teacher pass happened once, before training
    if written:
        one_epoch_of.append(written)
    if config.get("teacher_cache"):
        one_epoch_of.append(tokens)
    # final.json's passes over the data (a token-matched control runs more than its --epochs), else the flag
    epochs = budget.get("epochs") or (config.get("epochs") if not config.get("total_steps") else None)
    if one_epoch_of and not epochs:
        return result | {"missing": "neither final.json nor the run's config.json gives its epochs (total_steps "
                                    "set or epochs absent): one epoch of its teacher-written or cached tokens is "
                                    "unknown"}
    epochs = epochs or 1
    teacher_n = teacher or 0
    flops = {"student_training": TRAINING_FLOPS_PER_PARAMETER * student * (trained + ptx),
             "student_sampling": FORWARD_FLOPS_PER_PARAMETER * student * rollout,
             "teacher_scoring": FORWARD_FLOPS_PER_PARAMETER * teacher_n * teacher_live,
             "teacher_data": FORWARD_FLOPS_PER_PARAMETER * teacher_n * sum(one_epoch_of) / epochs}
    return result | flops | {"own": sum(flops.values())}


def teacher_training_flops(budget: dict, teacher: int | None) -> float | None:
    """A teacher's own fine-tuning: 6·T·its training tokens (counted once, shared by its students)."""
    if not budget.get("runs") or teacher is None or budget.get("tokens") is None:
        return None
    return TRAINING_FLOPS_PER_PARAMETER * teacher * budget["tokens"]
