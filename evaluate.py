"""Evaluate one model by sampled generation + Rouge-L on MiniLLM's evaluation sets (ref §7).

  python evaluate.py --model-path M --data-root DATA --save RUN/eval [--eval-sets dolly ...]
  deepspeed --num_gpus N evaluate.py ...   (prompts are sharded over ranks)

Protocol: Rouge-L and exact match from sampling as MiniLLM does (temperature 1, top-k off, top-p
1, no n-gram blocking, ≤ 256 new tokens, prompts ≤ 256 tokens left-truncated, seeds 10..50), and
from ONE greedy decoding (top-k 1, `_greedy` keys), so a reader sees when a gain at temperature 1
is only a sharper distribution; beside them the mean per-token entropy of the model's own
distribution on its samples. Rows with an `answer` field (step-by-step tasks) are also scored by
answer accuracy, strict (only the label behind an answer marker counts) and flexible (else the
last number / the whole text), from the greedy decoding (--accuracy-decoding sampled: from every
seed's samples instead, and no greedy decoding at all). A checkpoint trained behind a task prefix
(its task.json) gets that prefix in front of every prompt. Rows may carry what scoring against a
world needs (the embedded default's do: minillm.data.synthetic.eval_row): `label_output` (the
step-by-step label task's reference, e.g. "The answer is fox.") and `facts` (a fact check).

Writes {save}/{set}/{seed}/answers.jsonl and metrics.json per generation seed,
{save}/{set}/greedy/answers.jsonl and metrics.json (greedy Rouge-L, exact match, accuracy), then
{save}/summary.json and summary.md. summary.json:

  model, model_path, seeds, prompt_prefix, sampling, accuracy_decoding, sets: {set: entry}
  entry = {
    rows, path,
    rougeL_per_seed, rougeL_mean, rougeL_std,                 percent; mean ± sample std over seeds
    exact_match_per_seed, exact_match_mean, exact_match_std,
    rougeL_greedy, exact_match_greedy,                        from the greedy decoding (absent with
                                                                --accuracy-decoding sampled)
    entropy_per_seed, entropy_mean, entropy_std,              nats per generated token (EOS included)
                                                                of the model's raw distribution where
                                                                it sampled, per seed
    rougeL_label_per_seed, _mean, _std, rougeL_label_greedy,  when rows have `label_output`: the same
    exact_match_label_per_seed, _mean, _std, _greedy            against the label references
    fact_rows,                                                when rows have `facts`: over those rows,
    fact_{precision,recall,f1}_per_seed, _mean, _std, _greedy   percent (minillm.metrics.fact_scores)
    answer_rows, accuracy_decoding,                           when some row has an answer:
    accuracy_strict, accuracy_flexible,                         percent of the answer rows (greedy:
                                                                one number; sampled: the seeds' mean,
    [accuracy_strict_per_seed, _mean, _std, same flexible]      and these per-seed keys)
    multi_answer_rows, distinct_per_prompt, coverage,         when some row's output is a list:
                                                                distinct normalised predictions per
                                                                prompt over the seeds (mean) and the
                                                                percent of its references some seed
                                                                produced (normalised exact match);
    distinct_valid_per_prompt,                                  distinct VALID ones per prompt;
    validity_per_seed, _mean, _std, validity_greedy             percent of answers that are valid
    families: {family: the same keys but path and             when rows have a `category`
               accuracy_decoding}
  }
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from minillm import args as cli
from minillm.distributed import init_distributed
from minillm.eval.evaluation import (
    ACCURACY_DECODINGS,
    DEFAULT_EVAL_SETS,
    GREEDY_TOP_K,
    eval_set_path,
    Generations,
    generate_texts,
    load_eval_set,
    summarize_set,
)
from minillm.eval.summary import summary_table
from minillm.fileio import atomic_write_json, atomic_write_jsonl, atomic_write_text
from minillm.log import RunLogger, peak_memory_mib
from minillm.modeling import DTYPES, load_for_inference
from minillm.train.checkpoint import read_prompt_prefix, resolve_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_args(parser)
    cli.add_eval_set_args(parser)
    cli.add_generation_args(parser)
    parser.add_argument("--max-prompt-length", type=int, default=256)
    parser.add_argument("--save", required=True, help="output folder for answers, metrics and the summary")
    parser.add_argument("--name", help="model name in summaries (default: the model folder's name)")
    parser.add_argument("--pick", default="rougeL", choices=("rougeL", "valid_loss"),
                        help="which best.json entry a training run folder given as --model-path resolves to")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--prompt-prefix", default=None,
                        help="text before every prompt (default: the checkpoint's task.json prefix, else none)")
    parser.add_argument("--accuracy-decoding", choices=ACCURACY_DECODINGS, default="greedy",
                        help="answer accuracy from one greedy decoding (default) or from every seed's samples")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.set_defaults(eval_sets=None)
    return parser


def resolve_sets(args: argparse.Namespace, log: RunLogger) -> list[str]:
    """Named sets must exist; of the default five, the absent ones are skipped (and said so)."""
    if args.eval_sets is not None:
        missing = [s for s in args.eval_sets if not eval_set_path(args.data_root, s).is_file()]
        if missing:
            raise SystemExit("error: eval set(s) not found: " +
                             ", ".join(str(eval_set_path(args.data_root, s)) for s in missing))
        return args.eval_sets
    present = [s for s in DEFAULT_EVAL_SETS if eval_set_path(args.data_root, s).is_file()]
    skipped = sorted(set(DEFAULT_EVAL_SETS) - set(present))
    if skipped:
        log.info(f"skipping absent eval sets under {args.data_root}: {', '.join(skipped)}")
    if not present:
        raise SystemExit(f"error: none of {', '.join(DEFAULT_EVAL_SETS)} exists under {args.data_root}")
    return present


# Per-seed metrics of a set (the sampled accuracy ones only with --accuracy-decoding sampled).
SEEDED_METRICS = ("rougeL", "exact_match", "accuracy_strict", "accuracy_flexible")


def answer_records(eval_set, texts: list[str]) -> list[dict]:
    """answers.jsonl: each prompt with its reference, prediction and, when the row has them, its
    gold answer and family."""
    return [{"prompt": prompt, "reference": reference, "prediction": text,
             **({"answer": answer} if answer else {}), **({"category": family} if family else {})}
            for prompt, reference, text, answer, family in zip(eval_set.prompts, eval_set.references, texts,
                                                               eval_set.answers, eval_set.families)]


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    args = cli.validate(args)
    dist_info = init_distributed()
    save = Path(args.save)
    log = RunLogger(save, dist_info.rank, name="eval_log")
    log.config({"entrypoint": "evaluate", "world_size": dist_info.world_size, **vars(args)})
    model_path = resolve_checkpoint(args.model_path, args.pick)
    name = args.name or Path(args.model_path).resolve().name
    log.info(f"model {name}: {model_path}")
    model, tokenizer = load_for_inference(model_path, args.dtype, dist_info.device, args.tokenizer_path)
    config = cli.sampling_config(args)
    prefix = read_prompt_prefix(model_path) if args.prompt_prefix is None else args.prompt_prefix
    if prefix:
        log.info(f"prompts are preceded by the task prefix {prefix!r}")

    greedy_config = replace(config, top_k=GREEDY_TOP_K)
    summary = {"model": name, "model_path": str(model_path), "seeds": args.seeds, "prompt_prefix": prefix,
               "sampling": vars(config), "accuracy_decoding": args.accuracy_decoding, "sets": {}}
    for set_name in resolve_sets(args, log):
        try:
            eval_set = load_eval_set(args.data_root, set_name, prefix)
        except ValueError as err:  # a bad row: file:line and field
            raise SystemExit(f"error: {err}") from None
        rows = len(eval_set.rows) if not args.max_eval_rows else min(args.max_eval_rows, len(eval_set.rows))
        prompts = [tokenizer.encode(p, add_special_tokens=False) for p in eval_set.prompts[:rows]]
        references, answers = eval_set.references[:rows], eval_set.answers[:rows]

        speed = {}  # output folder → sampling time and tokens, for the log (benchmarks/gpu_check_report.py)

        def generate(seed: int, sampling, folder: str) -> Generations:
            started = time.time()
            out = generate_texts(model, tokenizer, prompts, sampling, seed=seed, dist_info=dist_info,
                                 max_prompt_length=args.max_prompt_length, batch_tokens=args.eval_batch_tokens,
                                 logger=log, desc=f"{set_name} {folder if folder == 'greedy' else 'seed ' + folder}",
                                 record_entropy=folder != "greedy")
            speed[folder] = {"seconds": round(time.time() - started, 3), "tokens": int(sum(out.lengths)),
                             "peak_memory_mib": round(peak_memory_mib(dist_info.device), 1)}
            return out

        samples = [generate(seed, config, str(seed)) for seed in args.seeds]
        sampled = [out.texts for out in samples]
        greedy = generate(args.seeds[0], greedy_config, "greedy").texts if args.accuracy_decoding == "greedy" else None
        label_references, fact_checks = eval_set.label_references, eval_set.fact_checks
        entry = {"path": str(eval_set.path), **summarize_set(
            references, answers, eval_set.families[:rows], sampled, greedy,
            label_references=label_references[:rows] if label_references is not None else None,
            fact_checks=fact_checks[:rows] if fact_checks is not None else None,
            entropies=[out.entropies for out in samples], lengths=[out.lengths for out in samples])}
        summary["sets"][set_name] = entry
        outputs = {str(seed): (texts, {"seed": seed, **{metric: entry[f"{metric}_per_seed"][index]
                                                        for metric in SEEDED_METRICS if f"{metric}_per_seed" in entry}})
                   for index, (seed, texts) in enumerate(zip(args.seeds, sampled))}
        if greedy is not None:
            outputs["greedy"] = (greedy, {"decoding": "greedy", **{metric: entry[f"{metric}_greedy"]
                                                                   for metric in ("rougeL", "exact_match")},
                                          **{metric: entry[metric] for metric in ("accuracy_strict", "accuracy_flexible")
                                             if metric in entry}})
        for folder, (texts, metrics) in outputs.items():
            log.metrics({"event": "eval", "set": set_name, "rows": rows, **metrics, **speed[folder]})
            if dist_info.is_main:
                atomic_write_jsonl(save / set_name / folder / "answers.jsonl", answer_records(eval_set, texts))
                atomic_write_json(save / set_name / folder / "metrics.json", {"set": set_name, "rows": rows, **metrics})
    if dist_info.is_main:
        atomic_write_json(save / "summary.json", summary)
        atomic_write_text(save / "summary.md", summary_table([summary]))
        log.info("summary (Rouge-L, mean ± std over seeds):\n" + summary_table([summary]))
    log.close()
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
