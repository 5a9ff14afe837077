"""How near each student is to its teacher, on held-out teacher samples: KL per token and Rouge-L.

  python tools/compare_to_teacher.py --teacher checkpoints/stories260K --data-dir processed_data/stories/full \
      --models init=checkpoints/stories-student seqkd=results/stories/seqkd ... --out results/stories

For every model (a model folder, or a training run folder: its FINAL checkpoint, so methods are
compared at the budget they were given, not at a checkpoint picked on validation):
- forward KL(p‖q) and reverse KL(q‖p) per token, exact over the vocabulary, on the responses of
  the `--split` items (continuations the teacher sampled; the teacher is p, the student q);
- the reverse KL on the student's OWN samples (what MiniLLM minimises): Σ(log q − log p) of the
  drawn tokens over the sampled tokens, from the same samples as Rouge-L;
- Rouge-L of a sampled continuation (temperature 1, as evaluate.py) against the teacher's held-out
  continuation, mean ± std over `--seeds`. The teacher's own row is the ceiling: two samples of
  one distribution differ, so it is far below 100.
Writes `{out}/comparison.md` and `{out}/comparison.json` and prints the table. Single process.

With `--tokenizer-free` the models may have OTHER tokenizers than the teacher (cross-tokenizer
distillation, docs/cross-tokenizer.md) and every model is measured on text
(minillm.eval.cross_tokenizer): each reads the prompts as text in its own tokenizer and samples
`--max-new-tokens` × (its tokens / the teacher's tokens over the held-out continuations) tokens,
so that continuations have about the teacher's length in characters; then
- teacher bits/char on own samples: the teacher's negative log-likelihood of the model's sampled
  continuations, in bits per character (how teacher-like the model writes; the teacher's own row is
  its entropy rate), mean over `--seeds`;
- bits/char on teacher samples: the model's negative log-likelihood of the teacher's held-out
  continuations per character (how much of the teacher it covers);
- Rouge-L of the sampled continuation against the teacher's, mean ± std over `--seeds`;
- forward / reverse KL per token as above, for the models that share the teacher's tokenizer
  ("–" for the others).
It writes `{out}/comparison_tokenizer_free.{md,json}`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from minillm.data.cross_tokenizer import TextCodec  # noqa: E402
from minillm.data.datasets import TokenDataset  # noqa: E402
from minillm.distributed import DistInfo  # noqa: E402
from minillm.eval.cross_tokenizer import continuation_nll, sample_continuations  # noqa: E402
from minillm.eval.evaluation import generate_texts, token_divergences  # noqa: E402
from minillm.eval.generation import SamplingConfig  # noqa: E402
from minillm.fileio import atomic_write_json, atomic_write_text  # noqa: E402
from minillm.metrics import bits_per_character, compute_metrics  # noqa: E402
from minillm.modeling import check_same_tokenizer, load_model, load_tokenizer  # noqa: E402
from minillm.statistics import mean_and_std  # noqa: E402

SINGLE_PROCESS = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
WHOLE_ITEMS = 10**9  # TokenDataset's max_length: score every token the teacher wrote


def resolve_model(path: str | Path) -> tuple[Path, dict]:
    """A run folder (it has final.json) means its final checkpoint; returns (folder, run facts)."""
    path = Path(path)
    final = path / "final.json"
    if not final.is_file():
        return path, {}
    facts = json.loads(final.read_text())
    return path / str(facts["steps"]), {"steps": facts["steps"], "train_seconds": facts.get("train_seconds")}


def compare(teacher_dir: str | Path, data_dir: str | Path, split: str, models: dict[str, str],
            seeds: list[int], max_new_tokens: int, batch_tokens: int = 16384) -> list[dict]:
    """One result row per model, the teacher's first."""
    tokenizer = load_tokenizer(teacher_dir)
    teacher = load_model(teacher_dir).eval()
    dataset = TokenDataset(data_dir, split, max_length=WHOLE_ITEMS)
    prompts = [dataset.prompt(i) for i in range(len(dataset))]
    references = dataset.references()
    config = SamplingConfig(max_new_tokens=max_new_tokens)
    rows = []
    for name, path in {"teacher": str(teacher_dir), **models}.items():
        folder, facts = resolve_model(path)
        model = teacher if name == "teacher" else load_model(folder).eval()
        vocab_size = check_same_tokenizer(load_tokenizer(folder), tokenizer)
        divergences = token_divergences(model, teacher, dataset, ("forward_kl", "reverse_kl"), vocab_size,
                                        tokenizer.pad_token_id)
        rouge, own_reverse_kl, sampled_tokens = [], 0.0, 0
        for seed in seeds:
            out = generate_texts(model, tokenizer, prompts, config, seed=seed, dist_info=SINGLE_PROCESS,
                                 max_prompt_length=max(len(p) for p in prompts), batch_tokens=batch_tokens,
                                 teacher=teacher)
            rouge.append(compute_metrics(out.texts, references)["rougeL"])
            own_reverse_kl += sum(out.student_logprobs) - sum(out.teacher_logprobs)
            sampled_tokens += sum(out.lengths)
        rouge_mean, rouge_std = (round(value, 4) for value in mean_and_std(rouge))
        rows.append({"model": name, "path": str(folder),
                     "parameters": sum(p.numel() for p in model.parameters()), **facts,
                     "forward_kl": round(divergences["forward_kl"], 4),
                     "reverse_kl": round(divergences["reverse_kl"], 4),
                     "reverse_kl_own_samples": round(own_reverse_kl / sampled_tokens, 4),
                     "rougeL_mean": rouge_mean, "rougeL_std": rouge_std, "rougeL_per_seed": rouge})
        print(f"{name}: forward KL {rows[-1]['forward_kl']:.4f}, reverse KL {rows[-1]['reverse_kl']:.4f}, "
              f"Rouge-L {rouge_mean:.2f}", flush=True)
    return rows


def markdown_table(rows: list[dict], items: int, seeds: list[int], notes: list[str]) -> str:
    lines = [f"Distance to the teacher on {items} held-out teacher samples (nats per token; lower is nearer); "
             f"Rouge-L against the teacher's continuation, mean ± std over seeds {' '.join(map(str, seeds))}.",
             "",
             "| model | parameters | steps | train s | forward KL | reverse KL | reverse KL, own samples | Rouge-L |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['parameters'] / 1e3:.1f}K | {row.get('steps', '–')} | "
                     f"{row.get('train_seconds') or '–'} | {row['forward_kl']:.3f} | {row['reverse_kl']:.3f} | "
                     f"{row['reverse_kl_own_samples']:.3f} | {row['rougeL_mean']:.2f} ± {row['rougeL_std']:.2f} |")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def compare_tokenizer_free(teacher_dir: str | Path, data_dir: str | Path, split: str, models: dict[str, str],
                           seeds: list[int], max_new_tokens: int) -> list[dict]:
    """One result row per model, the teacher's first, with the measures that need no shared tokenizer."""
    tokenizer = load_tokenizer(teacher_dir)
    teacher, teacher_codec = load_model(teacher_dir).eval(), TextCodec(tokenizer)
    dataset = TokenDataset(data_dir, split, max_length=WHOLE_ITEMS)
    texts = [teacher_codec.split_text(example.tokens[:example.prompt_len], example.tokens[example.prompt_len:])[:2]
             for example in map(dataset.example, range(len(dataset)))]
    prompts, references = [prompt for prompt, _ in texts], [response for _, response in texts]
    reference_texts = [response.decode("utf-8", errors="replace") for response in references]
    teacher_tokens = sum(len(teacher_codec.encode_continuation(p, r)[1].positions) for p, r in texts)
    rows = []
    for name, path in {"teacher": str(teacher_dir), **models}.items():
        folder, facts = resolve_model(path)
        model_tokenizer = load_tokenizer(folder)
        model, codec = (teacher, teacher_codec) if name == "teacher" else (load_model(folder).eval(),
                                                                            TextCodec(model_tokenizer))
        model_tokens = sum(len(codec.encode_continuation(p, r)[1].positions) for p, r in texts)
        new_tokens = math.ceil(max_new_tokens * model_tokens / teacher_tokens)
        teacher_bpc, rouge = [], []
        for seed in seeds:
            samples = sample_continuations(model, codec, prompts, new_tokens, seed)
            rouge.append(compute_metrics([s.decode("utf-8", errors="replace") for s in samples],
                                         reference_texts)["rougeL"])
            teacher_bpc.append(bits_per_character(*continuation_nll(teacher, teacher_codec, prompts, samples)))
        try:
            vocab_size = check_same_tokenizer(model_tokenizer, tokenizer)
        except ValueError:
            divergences = {"forward_kl": None, "reverse_kl": None}
        else:
            divergences = {k: round(v, 4) for k, v in token_divergences(
                model, teacher, dataset, ("forward_kl", "reverse_kl"), vocab_size, tokenizer.pad_token_id).items()}
        rouge_mean, rouge_std = (round(value, 4) for value in mean_and_std(rouge))
        rows.append({"model": name, "path": str(folder), "parameters": sum(p.numel() for p in model.parameters()),
                     "vocabulary": len(model_tokenizer), **facts, "max_new_tokens": new_tokens, **divergences,
                     "teacher_bpc_own_samples": round(mean_and_std(teacher_bpc)[0], 4),
                     "teacher_bpc_own_samples_per_seed": teacher_bpc,
                     "bpc_on_teacher_samples": round(bits_per_character(*continuation_nll(model, codec, prompts,
                                                                                          references)), 4),
                     "rougeL_mean": rouge_mean, "rougeL_std": rouge_std, "rougeL_per_seed": rouge})
        print(f"{name}: teacher bits/char of its samples {rows[-1]['teacher_bpc_own_samples']:.3f}, bits/char on the "
              f"teacher's {rows[-1]['bpc_on_teacher_samples']:.3f}, Rouge-L {rouge_mean:.2f}", flush=True)
    return rows


def markdown_table_tokenizer_free(rows: list[dict], items: int, seeds: list[int], notes: list[str]) -> str:
    def number(value, digits=3):
        return "–" if value is None else f"{value:.{digits}f}"

    lines = [f"Measures on text, {items} held-out teacher continuations; sampled continuations of about the "
             f"teacher's length (new tokens per model in the table), seeds {' '.join(map(str, seeds))}. "
             f"Bits per character, lower is nearer; KL (nats per token) only where the model shares the "
             f"teacher's tokenizer.",
             "",
             "| model | vocabulary | parameters | steps | new tokens | teacher bits/char, own samples | "
             "bits/char on teacher samples | Rouge-L | forward KL | reverse KL |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['vocabulary']} | {row['parameters'] / 1e3:.1f}K | "
                     f"{row.get('steps', '–')} | {row['max_new_tokens']} | {row['teacher_bpc_own_samples']:.3f} | "
                     f"{row['bpc_on_teacher_samples']:.3f} | {row['rougeL_mean']:.2f} ± {row['rougeL_std']:.2f} | "
                     f"{number(row['forward_kl'])} | {number(row['reverse_kl'])} |")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="teacher model folder")
    parser.add_argument("--data-dir", required=True, help="processed folder with {split}_0.bin/.idx and {split}.jsonl")
    parser.add_argument("--split", default="test")
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME=PATH",
                        help="model folders or run folders (final checkpoint)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[10, 20, 30])
    parser.add_argument("--max-new-tokens", type=int, required=True, help="sampled continuation length")
    parser.add_argument("--out", required=True, help="folder for comparison.md and comparison.json")
    parser.add_argument("--note", action="append", default=[], help="a line printed under the table (repeatable)")
    parser.add_argument("--tokenizer-free", action="store_true",
                        help="models may have other tokenizers: measure on text (see above); writes "
                             "comparison_tokenizer_free.{md,json}")
    args = parser.parse_args(argv)
    pairs = [entry.split("=", 1) for entry in args.models]
    models = dict(pair for pair in pairs if len(pair) == 2)
    if len(models) != len(args.models) or "teacher" in models:
        parser.error("--models needs distinct NAME=PATH entries (the teacher is added as 'teacher')")
    items = len(TokenDataset(args.data_dir, args.split, max_length=WHOLE_ITEMS))
    if args.tokenizer_free:
        rows = compare_tokenizer_free(args.teacher, args.data_dir, args.split, models, args.seeds, args.max_new_tokens)
        table, stem = markdown_table_tokenizer_free(rows, items, args.seeds, args.note), "comparison_tokenizer_free"
    else:
        rows = compare(args.teacher, args.data_dir, args.split, models, args.seeds, args.max_new_tokens)
        table, stem = markdown_table(rows, items, args.seeds, args.note), "comparison"
    out = Path(args.out)
    atomic_write_text(out / f"{stem}.md", table)
    atomic_write_json(out / f"{stem}.json", {"teacher": args.teacher, "data_dir": args.data_dir,
                                                "split": args.split, "seeds": args.seeds, "notes": args.note,
                                                "rows": rows})
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
