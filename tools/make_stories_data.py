"""Story data written by a teacher: openings as prompts, the teacher's continuations as responses.

  python tools/make_stories_data.py --teacher checkpoints/stories260K --out processed_data/stories \
      --num-train 2048 --num-valid 64 --num-test 128 --prompt-tokens 24 --continuation-tokens 40

The teacher samples (temperature 1, the evaluation sampler) `prompt-tokens + continuation-tokens`
tokens after BOS; the first `prompt-tokens` form the opening (the prompt, BOS included: the model
was trained with BOS before every story) and the rest the response. Prompts need no instruction
template, and the cut is made on token ids, so the processed files are written here directly (no
text round trip through tools/process_data_dolly.py). Responses get no EOS: they are cut
mid-story, and the teacher never ends a story with EOS (llama2.c separates stories with BOS).

Output (`--out`, replaced atomically), in the project's processed format:
  full/{train,valid,test}_0.bin/.idx + {split}.jsonl   prompt + split id + response (SFT, KD, evaluation)
  prompt/{train,valid}_0.bin/.idx + {split}.jsonl      prompts only (MiniLLM's rollouts)
  stories.json                                         teacher, settings, counts
  {full,prompt}/data_manifest.json                     tokenizer, settings, the teacher files' sha256
The first `num-valid` samples are the validation split, the next `num-test` the held-out test
split, the rest training data. Rows whose opening contains EOS are dropped (and counted).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from minillm.data.indexed import IndexedDatasetWriter, best_dtype, split_id_for  # noqa: E402
from minillm.data.manifest import write_data_manifest  # noqa: E402
from minillm.eval.generation import SamplingConfig, sample  # noqa: E402
from minillm.fileio import atomic_directory, atomic_open, atomic_write_json  # noqa: E402
from minillm.modeling import load_model, load_tokenizer  # noqa: E402

SPLITS = ("valid", "test", "train")  # sampling order: held-out splits first


@torch.no_grad()
def sample_stories(teacher: torch.nn.Module, bos_token_id: int, eos_token_id: int, count: int, length: int,
                   seed: int, batch_size: int) -> list[list[int]]:
    """`count` samples of up to `length` tokens after BOS (BOS not included); a row that draws EOS
    ends there, EOS included."""
    generator = torch.Generator().manual_seed(seed)
    config = SamplingConfig(max_new_tokens=length)
    stories = []
    for start in range(0, count, batch_size):
        rows = min(batch_size, count - start)
        prompts = torch.full((rows, 1), bos_token_id, dtype=torch.long)
        out = sample(teacher, prompts, torch.ones_like(prompts), config, eos_token_id, eos_token_id,
                     generator=generator)
        stories += [row[:n] for row, n in zip(out.tokens.tolist(), out.lengths.tolist())]
    return stories


def write_split(directory: Path, name: str, rows: list[tuple[list[int], list[int]]], tokenizer,
                prompt_only: bool) -> None:
    dtype = best_dtype(len(tokenizer))
    with (IndexedDatasetWriter(str(directory / f"{name}_0"), dtype) as writer,
          atomic_open(directory / f"{name}.jsonl") as texts):
        for prompt, response in rows:
            writer.add_item(prompt if prompt_only else prompt + [split_id_for(dtype)] + response)
            texts.write(json.dumps({"prompt": tokenizer.decode(prompt, skip_special_tokens=True),
                                    "output": tokenizer.decode(response, skip_special_tokens=True)}) + "\n")


def make_stories_data(teacher_dir: str | Path, out: str | Path, num_train: int, num_valid: int, num_test: int,
                      prompt_tokens: int, continuation_tokens: int, seed: int, batch_size: int = 256) -> dict:
    """Sample, split and write everything under `out`; return the summary saved as stories.json."""
    tokenizer = load_tokenizer(teacher_dir)
    teacher = load_model(teacher_dir).eval()
    sizes = {"valid": num_valid, "test": num_test, "train": num_train}
    stories = sample_stories(teacher, tokenizer.bos_token_id, tokenizer.eos_token_id, sum(sizes.values()),
                             prompt_tokens + continuation_tokens, seed, batch_size)
    kept = [([tokenizer.bos_token_id] + story[:prompt_tokens], story[prompt_tokens:]) for story in stories
            if tokenizer.eos_token_id not in story[:prompt_tokens]]
    summary = {"teacher": str(teacher_dir), "seed": seed, "prompt_tokens": prompt_tokens,
               "continuation_tokens": continuation_tokens, "sampled": len(stories),
               "dropped_eos_in_opening": len(stories) - len(kept), "splits": {},
               "distinct_openings": len({tuple(prompt) for prompt, _ in kept})}
    with atomic_directory(out) as tmp:
        (tmp / "full").mkdir()
        (tmp / "prompt").mkdir()
        start = 0
        for name in SPLITS:
            rows = kept[start:start + sizes[name]]
            start += sizes[name]
            summary["splits"][name] = len(rows)
            write_split(tmp / "full", name, rows, tokenizer, prompt_only=False)
            if name != "test":
                write_split(tmp / "prompt", name, rows, tokenizer, prompt_only=True)
        settings = {key: summary[key] for key in ("seed", "prompt_tokens", "continuation_tokens")}
        teacher_files = sorted(p for p in Path(teacher_dir).iterdir() if p.is_file())
        for variant in ("full", "prompt"):
            splits = {name: count for name, count in summary["splits"].items() if variant == "full" or name != "test"}
            write_data_manifest(tmp / variant, tool="tools/make_stories_data.py", tokenizer=tokenizer,
                                tokenizer_path=teacher_dir, settings={**settings, "only_prompt": variant == "prompt"},
                                sources=teacher_files, splits=splits)
        summary["example"] = {"prompt": tokenizer.decode(kept[0][0], skip_special_tokens=True),
                              "output": tokenizer.decode(kept[0][1], skip_special_tokens=True)}
        atomic_write_json(tmp / "stories.json", summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="teacher model folder (e.g. the converted stories260K)")
    parser.add_argument("--out", required=True, help="processed data folder to write")
    parser.add_argument("--num-train", type=int, default=2048)
    parser.add_argument("--num-valid", type=int, default=64)
    parser.add_argument("--num-test", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=24, help="opening length after BOS")
    parser.add_argument("--continuation-tokens", type=int, default=40, help="response length")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch-size", type=int, default=256, help="rows per sampling batch")
    args = parser.parse_args(argv)
    if min(args.num_train, args.num_valid, args.num_test, args.prompt_tokens, args.continuation_tokens) < 1:
        parser.error("counts and lengths must be ≥ 1")
    summary = make_stories_data(args.teacher, args.out, args.num_train, args.num_valid, args.num_test,
                                args.prompt_tokens, args.continuation_tokens, args.seed, args.batch_size)
    print(f"{args.out}: {summary['splits']} rows ({summary['distinct_openings']} distinct openings, "
          f"{summary['dropped_eos_in_opening']} dropped), e.g. {summary['example']['prompt']!r} -> "
          f"{summary['example']['output']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
