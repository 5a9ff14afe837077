"""A randomly initialised causal LM folder from any Hugging Face config and a tokenizer folder.

  python tools/make_random_model.py --config checkpoints/tiny-student --tokenizer checkpoints/tiny-tokenizer \\
      --seed 20 --out checkpoints/tiny-student-seed20
  python tools/make_random_model.py --config my_config.json --tokenizer ../shared/data/tokenizers/gpt2 --out M

--config is a config.json or a model folder holding one (only its architecture is read, never
its weights). The model's vocabulary is resized to the tokenizer's, and its BOS/EOS ids are the
tokenizer's EOS (GPT-2's convention). Weights are drawn from the architecture's own initialiser
under --seed, so one seed always gives the same model; the tokenizer files are copied beside the
weights. The folder appears atomically; an existing --out is refused unless --force.
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
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from minillm.fileio import atomic_directory  # noqa: E402


def build_random_model(config_path: Path, tokenizer_dir: Path, out: Path, seed: int) -> int:
    """Write the model folder; return its parameter count."""
    config = AutoConfig.from_pretrained(config_path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    config.vocab_size = len(tokenizer)
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        for path in Path(tokenizer_dir).iterdir():
            if path.is_file() and path.name != "config.json":
                shutil.copy2(path, tmp / path.name)
    return model.num_parameters()


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
        parameters = build_random_model(args.config, args.tokenizer, args.out, args.seed)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"built {args.out}: {parameters / 1e6:.2f}M parameters, seed {args.seed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
