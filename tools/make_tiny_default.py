"""Build the embedded default: synthetic data, a byte-level BPE tokenizer and two random tiny GPT-2s.

Everything the main command needs, made offline from one seed:
  data/tiny/                   raw.jsonl (dev rows first), valid.jsonl (test set), pretrain.txt
  checkpoints/tiny-tokenizer/  byte-level BPE, EOS `<|endoftext|>` (also BOS/UNK), no pad token
  checkpoints/tiny-teacher/    randomly initialised GPT-2 + tokenizer files
  checkpoints/tiny-student/    a smaller one sharing the vocabulary
Idempotent: a part that exists is skipped unless --force. Each part appears atomically (built in
a temporary sibling folder), so an interrupted run never leaves a half-built part to be skipped.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from minillm.data.processing import read_jsonl  # noqa: E402
from minillm.data.synthetic import write_default_dataset  # noqa: E402
from minillm.data.templates import build_prompt  # noqa: E402
from minillm.fileio import atomic_directory  # noqa: E402
from minillm.modeling import load_model, load_tokenizer  # noqa: E402

EOS_TOKEN = "<|endoftext|>"
DATA_DIR = Path("data/tiny")
TOKENIZER_DIR = Path("checkpoints/tiny-tokenizer")
TEACHER_DIR = Path("checkpoints/tiny-teacher")
STUDENT_DIR = Path("checkpoints/tiny-student")


@dataclass(frozen=True)
class ModelShape:
    """GPT-2 depth, heads and width."""

    n_layer: int
    n_head: int
    n_embd: int


TEACHER_SHAPE = ModelShape(n_layer=4, n_head=4, n_embd=128)
STUDENT_SHAPE = ModelShape(n_layer=2, n_head=2, n_embd=128)  # docs/pilot-tiny.md: it can learn the reasoning
VOCAB_SIZE = 2000
N_POSITIONS = 256
DATASET_SIZES = ("n_train", "n_dev", "n_test", "n_pretrain")  # write_default_dataset's size arguments


def _rows(path: Path) -> list[dict]:
    return [row for _, row in read_jsonl(path)]


def train_tokenizer(data_dir: Path, out_dir: Path, vocab_size: int, model_max_length: int) -> None:
    """GPT-2-style byte-level BPE on the train+dev prompts (template included), responses, rationales."""
    rows = _rows(data_dir / "raw.jsonl")
    texts = [build_prompt(row["instruction"], row["input"]) + row["output"] for row in rows]
    texts += [row["rationale"] for row in rows if row["rationale"]]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    GPT2TokenizerFast(tokenizer_object=tokenizer, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN,
                      unk_token=EOS_TOKEN, model_max_length=model_max_length).save_pretrained(out_dir)


def build_model(tokenizer_dir: Path, out_dir: Path, shape: ModelShape, n_positions: int, seed: int) -> None:
    """A seeded random GPT-2 over exactly the tokenizer's vocabulary, with the tokenizer files copied in."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_layer=shape.n_layer,
                        n_head=shape.n_head, n_embd=shape.n_embd,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(out_dir)
    for path in tokenizer_dir.iterdir():
        shutil.copy2(path, out_dir / path.name)


def _ensure(path: Path, marker: str, build: Callable[[Path], None], force: bool) -> None:
    """Build `path` (complete once `marker` exists in it) unless it is already there."""
    if (path / marker).exists() and not force:
        print(f"skipped {path} (exists; --force rebuilds)")
        return
    with atomic_directory(path) as tmp:
        build(tmp)
    print(f"built   {path}")


def _describe(name: str, values: Sequence[int]) -> str:
    return f"{name} mean {statistics.fmean(values):.1f} max {max(values)}"


def token_stats(tokenizer_dir: Path, data_dir: Path) -> dict[str, str]:
    """Prompt / response (with EOS) / rationale lengths in tokens per split, to size max lengths."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    raw, test = _rows(data_dir / "raw.jsonl"), _rows(data_dir / "valid.jsonl")
    stats = {}
    for split, rows in (("train+dev", raw), ("test", test)):
        prompts = [build_prompt(row["instruction"], row["input"]) for row in rows]
        prompt_lengths = [len(tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
        outputs = [row["output"] if isinstance(row["output"], str) else row["output"][0] for row in rows]
        full_lengths = [len(tokenizer.encode(p + output, add_special_tokens=False)) + 1
                        for p, output in zip(prompts, outputs)]
        rationale_lengths = [len(tokenizer.encode(row["rationale"], add_special_tokens=False))
                             for row in rows if row["rationale"]]
        stats[split] = ", ".join((
            _describe("prompt", prompt_lengths),
            _describe("response", [f - p for f, p in zip(full_lengths, prompt_lengths)]),
            _describe("prompt+response", full_lengths),
            _describe("rationale", rationale_lengths),
        ))
    return stats


def build_default(root: Path = REPO_ROOT, seed: int = 0, force: bool = False, vocab_size: int = VOCAB_SIZE,
                  teacher: ModelShape = TEACHER_SHAPE, student: ModelShape = STUDENT_SHAPE,
                  n_positions: int = N_POSITIONS, places: dict[str, Path] | None = None,
                  **dataset_sizes: int) -> dict[str, Path]:
    """Build (or keep) every part under `root` (or where `places` puts a part: data, tokenizer,
    teacher, student); return their folders.

    `dataset_sizes` (n_train, n_dev, n_test, n_pretrain) override write_default_dataset's defaults.
    """
    paths = {"data": root / DATA_DIR, "tokenizer": root / TOKENIZER_DIR,
             "teacher": root / TEACHER_DIR, "student": root / STUDENT_DIR, **(places or {})}
    _ensure(paths["data"], "raw.jsonl", lambda out: write_default_dataset(out, seed=seed, **dataset_sizes), force)
    _ensure(paths["tokenizer"], "tokenizer.json",
            lambda out: train_tokenizer(paths["data"], out, vocab_size, n_positions), force)
    for role, shape in (("teacher", teacher), ("student", student)):
        _ensure(paths[role], "model.safetensors",
                lambda out, shape=shape: build_model(paths["tokenizer"], out, shape, n_positions, seed), force)
    vocabulary = len(load_tokenizer(paths["tokenizer"]))
    print(f"tokenizer: {vocabulary} tokens")
    for role, shape in (("teacher", teacher), ("student", student)):
        model = load_model(paths[role])  # a kept part is checked as any model folder is
        if model.config.vocab_size != vocabulary:
            raise ValueError(f"{paths[role]} has vocab_size {model.config.vocab_size} but the tokenizer "
                             f"has {vocabulary} tokens; rebuild with --force")
        c = model.config
        if (c.n_layer, c.n_head, c.n_embd) != (shape.n_layer, shape.n_head, shape.n_embd):
            raise ValueError(f"{paths[role]} is {c.n_layer} layers × {c.n_head} heads × {c.n_embd} wide, an earlier "
                             f"default; this one is {shape.n_layer} × {shape.n_head} × {shape.n_embd}: rebuild with --force")
        print(f"{role}: {c.n_layer} layers x {c.n_head} heads x {c.n_embd} wide, "
              f"{model.num_parameters() / 1e6:.2f}M parameters")
    for split, line in token_stats(paths["tokenizer"], paths["data"]).items():
        print(f"tokens per row, {split}: {line}")
    return paths


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root to build under")
    for part, default in (("data", DATA_DIR), ("tokenizer", TOKENIZER_DIR), ("teacher", TEACHER_DIR),
                          ("student", STUDENT_DIR)):
        parser.add_argument(f"--{part}-dir", type=Path, help=f"where this part goes (default: ROOT/{default})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild parts that already exist")
    for size in DATASET_SIZES:
        parser.add_argument(f"--{size.replace('_', '-')}", type=int, help="default: minillm.data.synthetic's")
    parser.add_argument("--vocab-size", type=int, default=VOCAB_SIZE,
                        help="BPE target; the default corpus saturates near 1150 tokens (whole words)")
    parser.add_argument("--n-positions", type=int, default=N_POSITIONS)
    for role, shape in (("teacher", TEACHER_SHAPE), ("student", STUDENT_SHAPE)):
        parser.add_argument(f"--{role}-shape", type=int, nargs=3, metavar=("N_LAYER", "N_HEAD", "N_EMBD"),
                            default=[shape.n_layer, shape.n_head, shape.n_embd])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    transformers_logging.disable_progress_bar()
    sizes = {size: getattr(args, size) for size in DATASET_SIZES if getattr(args, size) is not None}
    places = {part: getattr(args, f"{part}_dir").resolve() for part in ("data", "tokenizer", "teacher", "student")
              if getattr(args, f"{part}_dir") is not None}
    build_default(args.root.resolve(), seed=args.seed, force=args.force, vocab_size=args.vocab_size,
                  teacher=ModelShape(*args.teacher_shape), student=ModelShape(*args.student_shape),
                  n_positions=args.n_positions, places=places, **sizes)


if __name__ == "__main__":
    main()
