"""A randomly initialised causal LM folder from any Hugging Face config and a tokenizer folder.

  python tools/make_random_model.py --config checkpoints/tiny-student --tokenizer checkpoints/tiny-tokenizer \\
      --seed 20 --out checkpoints/tiny-student-seed20
  python tools/make_random_model.py --config configs/models/llama-toy.json --tokenizer ../shared/data/tokenizers/qwen2 --out M

--config is a config.json or a model folder holding one (only its architecture is read, never
its weights). --tokenizer is any tokenizer folder a model family releases: tokenizer.json,
vocab.json + merges.txt (GPT-2 / Qwen style) or a SentencePiece tokenizer.model (Llama /
Mistral style; minillm/tokenizer_files.py says how each is read). The tokenizer files of a
folder whose tokenizer_config.json declares its class are copied as they are; any other
tokenizer is built (or read) once and saved beside the weights (tokenizer.json +
tokenizer_config.json, declaring its class, so that a model folder of another family reads
it the same). The model's vocabulary is resized to the tokenizer's; its EOS id is the
tokenizer's, its BOS id the tokenizer's BOS (the EOS when it has none, GPT-2's convention).
Weights are drawn from the architecture's own initialiser under --seed, so one seed always
gives the same model; random_init.json beside config.json records that they are random
(minillm/random_init.py). The folder appears atomically; an existing --out is refused unless
--force.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM  # noqa: E402

from minillm.fileio import atomic_directory  # noqa: E402
from minillm.random_init import record_random_init  # noqa: E402
from minillm.tokenizer_files import TOKENIZER_FILES, describe_special_tokens, read_tokenizer  # noqa: E402


def build_random_model(config_path: Path, tokenizer_dir: Path, out: Path, seed: int) -> tuple[int, str]:
    """Write the model folder; return its parameter count and a line on its tokenizer."""
    config = AutoConfig.from_pretrained(config_path, local_files_only=True)
    loaded = read_tokenizer(tokenizer_dir)
    tokenizer = loaded.tokenizer
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {tokenizer_dir} has no EOS token (responses are terminated by EOS)")
    config.vocab_size = len(tokenizer)
    config.eos_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.eos_token_id if tokenizer.bos_token_id is None else tokenizer.bos_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        if loaded.built:
            tokenizer.save_pretrained(tmp)
        else:  # only the tokenizer's files: a model folder's weights must not replace the drawn ones
            for name in TOKENIZER_FILES:
                if (Path(tokenizer_dir) / name).is_file():
                    shutil.copy2(Path(tokenizer_dir) / name, tmp / name)
        record_random_init(tmp, seed=seed, config=str(config_path), tokenizer=str(tokenizer_dir))
    summary = f"{loaded.built_from}; {len(tokenizer)} tokens; {describe_special_tokens(tokenizer)}"
    return model.num_parameters(), summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="config.json, or a model folder holding one")
    parser.add_argument("--tokenizer", required=True, type=Path, help="local tokenizer folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"error: {args.out} exists (--force replaces it)", file=sys.stderr)
        return 1
    try:
        parameters, tokenizer = build_random_model(args.config, args.tokenizer, args.out, args.seed)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"built {args.out}: {parameters / 1e6:.2f}M parameters, seed {args.seed}\ntokenizer: {tokenizer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
