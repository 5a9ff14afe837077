"""A byte-level BPE tokenizer trained on the text of a processed data folder: a student tokenizer
that differs from the teacher's (cross-tokenizer distillation, docs/cross-tokenizer.md).

  python tools/make_student_tokenizer.py --data-dir processed_data/stories/full \
      --data-tokenizer checkpoints/stories260K --vocab-size 512 --out checkpoints/stories-bpe512

Every item of the `--split` (train) split is decoded with the tokenizer the folder was made with
(`--data-tokenizer`) and the BPE is trained on those texts: GPT-2's byte-level scheme (no unknown
characters, `Ġ` for a leading space), one special token `<|endoftext|>` (EOS, BOS, UNK; pad = EOS
when loaded). Deterministic; the folder appears atomically.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import GPT2TokenizerFast  # noqa: E402

from minillm.data.datasets import TokenDataset  # noqa: E402
from minillm.fileio import atomic_directory  # noqa: E402
from minillm.modeling import load_tokenizer  # noqa: E402

EOS_TOKEN = "<|endoftext|>"
WHOLE_ITEMS = 10**9


def item_texts(data_dir: str | Path, split: str, tokenizer) -> list[str]:
    """Each item of the split (prompt and response together) as text."""
    dataset = TokenDataset(data_dir, split, max_length=WHOLE_ITEMS)
    return [tokenizer.decode(dataset.example(i).tokens.tolist(), skip_special_tokens=True) for i in range(len(dataset))]


def make_student_tokenizer(data_dir: str | Path, data_tokenizer: str | Path, out: str | Path, vocab_size: int,
                           split: str = "train", model_max_length: int = 1024) -> GPT2TokenizerFast:
    texts = item_texts(data_dir, split, load_tokenizer(data_tokenizer))
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = GPT2TokenizerFast(tokenizer_object=tokenizer, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN,
                             unk_token=EOS_TOKEN, model_max_length=model_max_length)
    with atomic_directory(out) as tmp:
        fast.save_pretrained(tmp)
    return fast


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="processed folder ({split}_0.bin/.idx)")
    parser.add_argument("--data-tokenizer", required=True, help="the tokenizer the folder was made with")
    parser.add_argument("--split", default="train")
    parser.add_argument("--vocab-size", type=int, default=512, help="tokens, the 256 bytes and EOS included")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.vocab_size < 257:
        parser.error("--vocab-size must be ≥ 257 (the 256 byte tokens and EOS)")
    tokenizer = make_student_tokenizer(args.data_dir, args.data_tokenizer, args.out, args.vocab_size, args.split)
    print(f"{args.out}: byte-level BPE, {len(tokenizer)} tokens, trained on {args.data_dir} ({args.split})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
