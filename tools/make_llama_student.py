"""A randomly initialised Llama student that shares a Llama teacher's tokenizer and vocabulary.

  python tools/make_llama_student.py --teacher checkpoints/stories260K --out checkpoints/stories-student \
      --layers 2 --dim 32 --heads 4 --kv-heads 2 --hidden-dim 86 --seed 0

The student copies everything about the teacher that word-level KD needs to agree on (vocabulary,
special tokens, maximum positions, RMSNorm epsilon, rotary base, tied classifier) and takes its own
depth and widths; weights are HF's seeded initialisation, so every method trains from the same
start. The folder (model + the teacher's tokenizer files) appears atomically.

With `--tokenizer DIR` the student gets ANOTHER tokenizer (cross-tokenizer distillation,
docs/cross-tokenizer.md): its vocabulary size and special token ids come from that tokenizer,
everything else from the teacher as above.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from minillm.fileio import atomic_directory  # noqa: E402
from minillm.modeling import load_tokenizer  # noqa: E402


def student_config(teacher: LlamaConfig, layers: int, dim: int, heads: int, kv_heads: int,
                   hidden_dim: int) -> LlamaConfig:
    if dim % heads or heads % kv_heads:
        raise ValueError(f"dim {dim} must be a multiple of heads {heads}, and heads of kv-heads {kv_heads}")
    if (dim // heads) % 2:
        raise ValueError(f"head size {dim // heads} must be even (rotary pairs)")
    config = LlamaConfig.from_dict(teacher.to_dict())
    config.update({"num_hidden_layers": layers, "hidden_size": dim, "num_attention_heads": heads,
                   "num_key_value_heads": kv_heads, "intermediate_size": hidden_dim, "head_dim": dim // heads})
    return config


def make_student(teacher_dir: str | Path, out: str | Path, layers: int, dim: int, heads: int, kv_heads: int,
                 hidden_dim: int, seed: int, tokenizer_dir: str | Path | None = None) -> LlamaForCausalLM:
    teacher_config = LlamaConfig.from_pretrained(teacher_dir, local_files_only=True)
    tokenizer = load_tokenizer(tokenizer_dir or teacher_dir)
    config = student_config(teacher_config, layers, dim, heads, kv_heads, hidden_dim)
    if tokenizer_dir is not None:
        config.update({"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
                       "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id})
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="Llama teacher folder (config + tokenizer)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--hidden-dim", type=int, default=86, help="SwiGLU width")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokenizer", help="give the student this tokenizer instead of the teacher's")
    args = parser.parse_args(argv)
    try:
        model = make_student(args.teacher, args.out, args.layers, args.dim, args.heads, args.kv_heads,
                             args.hidden_dim, args.seed, args.tokenizer)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"student {args.out}: {args.layers} layers x {args.dim} wide ({args.heads} heads, {args.kv_heads} "
          f"kv heads, SwiGLU {args.hidden_dim}), {model.num_parameters() / 1e3:.1f}K parameters, seed {args.seed}, "
          f"{model.config.vocab_size}-token vocabulary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
