"""Local model and tokenizer loading (never the hub) and the checks that make pairs compatible.

Weights load from safetensors only (`model.safetensors`, or the shards a
`model.safetensors.index.json` names): a folder with pickled weights alone (`pytorch_model.bin`)
is refused with the command that converts it, and a damaged safetensors file is refused naming it.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from minillm.tokenizer_files import read_tokenizer


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def inference_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype of an inference-only model (`--dtype` of evaluate.py / tools)."""
    if name == "fp16" and device.type == "cpu":
        raise SystemExit("error: --dtype fp16 needs a GPU; use fp32 or bf16 on CPU")
    return DTYPES[name]


def _require_local_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not (path / "config.json").exists() and not (path / "tokenizer_config.json").exists():
        raise FileNotFoundError(f"{what} {path} is not a local Hugging Face folder "
                                "(no config.json / tokenizer_config.json); this project never "
                                "downloads from the hub: point to a checkpoint on disk")
    return path


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer with pad = EOS, as MiniLLM's batches assume (ref §2), from any folder that
    minillm.tokenizer_files reads (tokenizer.json, vocab.json + merges.txt, tokenizer.model)."""
    folder = Path(path)
    try:
        tokenizer = read_tokenizer(folder).tokenizer
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - the tokenizers library's errors name no file
        raise ValueError(f"tokenizer {folder}: cannot be loaded ({type(err).__name__}: {err}); its files are "
                         f"damaged, incomplete or of a kind this installation cannot read") from err
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {path} has no EOS token (responses are terminated by EOS); a folder with "
                         "tokenizer.json names it in tokenizer_config.json (\"eos_token\")")
    tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


SAFETENSORS_INDEX = "model.safetensors.index.json"


def safetensors_files(folder: Path) -> list[Path]:
    """The safetensors weight files of a model folder; refuses a folder without any, naming what
    it holds instead and how to convert it."""
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    if (folder / SAFETENSORS_INDEX).is_file():
        shards = sorted(set(json.loads((folder / SAFETENSORS_INDEX).read_text())["weight_map"].values()))
        return [folder / shard for shard in shards]
    found = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    raise FileNotFoundError(
        f"{folder} holds no safetensors weights (found {', '.join(found) or 'no weight file'}); model folders load "
        f"from model.safetensors only (pickled weights can run code when loaded). Convert a folder you trust with "
        f"python -c \"from transformers import AutoModelForCausalLM as M; "
        f"M.from_pretrained('{folder}', use_safetensors=False).save_pretrained('{folder}')\"")


def check_safetensors(path: Path) -> None:
    """Read a safetensors file's header (not its tensors): a truncated, empty or foreign file fails
    here with its path instead of deep inside from_pretrained."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing ({SAFETENSORS_INDEX} names it)")
    try:
        with safe_open(path, framework="pt"):
            pass
    except SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err}); it is truncated or damaged: copy or "
                         f"save the model again") from None


def load_model(path: str | Path, dtype: torch.dtype = torch.float32,
               device: torch.device | str = "cpu") -> torch.nn.Module:
    folder = _require_local_dir(path, "model")
    for weights_file in safetensors_files(folder):
        check_safetensors(weights_file)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=dtype, use_safetensors=True)
    return model.to(device)


def check_vocabulary(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, name: str) -> None:
    """The embedding may be padded beyond the tokenizer (never the other way round)."""
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < len(tokenizer):
        raise ValueError(f"{name}: the model has {rows} embedding rows but the tokenizer has "
                         f"{len(tokenizer)} tokens; they do not belong together")


def load_for_inference(model_path: str | Path, dtype_name: str, device: torch.device,
                       tokenizer_path: str | Path | None = None) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A model folder and its tokenizer (default: the model's own) for generation: eval mode, in
    `--dtype` (refused where the device cannot run it), vocabulary checked against the tokenizer."""
    tokenizer = load_tokenizer(tokenizer_path or model_path)
    model = load_model(model_path, inference_dtype(dtype_name, device), device).eval()
    check_vocabulary(model, tokenizer, str(model_path))
    return model, tokenizer


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 on the first real token, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def set_dropout(model: torch.nn.Module, probability: float) -> None:
    """Set every dropout in the model (modules and the attention-probability config field)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = probability
    for field in ("attn_pdrop", "attention_dropout"):
        if hasattr(model.config, field):
            setattr(model.config, field, probability)


def check_same_tokenizer(student_tokenizer: PreTrainedTokenizerBase, teacher_tokenizer: PreTrainedTokenizerBase) -> int:
    """Refuse a teacher/student pair whose tokenizers differ; return the shared vocabulary size.

    Word-level KD compares distributions column by column, so the token → id maps (`get_vocab()`,
    added tokens included) and the eos ids must be identical. Raises ValueError naming the first
    differing tokens. Returns max token id + 1, the `vocab_size` to pass to `divergence`.
    """
    student_vocab, teacher_vocab = student_tokenizer.get_vocab(), teacher_tokenizer.get_vocab()
    problems = []
    if student_vocab != teacher_vocab:
        differing = sorted(token for token in student_vocab.keys() | teacher_vocab.keys()
                           if student_vocab.get(token) != teacher_vocab.get(token))
        examples = ", ".join(f"{token!r}: student {student_vocab.get(token)} vs teacher "
                             f"{teacher_vocab.get(token)}" for token in differing[:5])
        problems.append(f"{len(differing)} tokens map to different ids (None = absent), e.g. {examples}")
    if student_tokenizer.eos_token_id != teacher_tokenizer.eos_token_id:
        problems.append(f"eos ids differ: student {student_tokenizer.eos_token_id} vs "
                        f"teacher {teacher_tokenizer.eos_token_id}")
    if problems:
        raise ValueError("teacher and student tokenizers differ, so their logits cannot be compared "
                         "for word-level KD: " + "; ".join(problems))
    return max(student_vocab.values()) + 1


def max_positions(model: torch.nn.Module) -> int:
    """How many positions the model reads (GPT-2's n_positions, Llama's max_position_embeddings)."""
    for field in ("max_position_embeddings", "n_positions"):
        value = getattr(model.config, field, None)
        if value:
            return int(value)
    raise ValueError(f"{type(model).__name__}: its config names no maximum position (n_positions / "
                     f"max_position_embeddings)")
