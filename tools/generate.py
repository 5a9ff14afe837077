"""Teacher outputs for sequence-level KD (SeqKD): sample a response for every training prompt.

  python tools/generate.py --model-path TEACHER_RUN --data-dir data/dolly --save data/dolly-seqkd
  deepspeed --num_gpus N tools/generate.py ...      (prompts are sharded over ranks)

Reads `{data-dir}/raw.jsonl` and writes `{save}/raw.jsonl` in the same format, so
tools/process_data_dolly.py turns it into training data with no hand edit: `output` is the
teacher's response and the gold one is kept as `gold_output`. The first `--dev-num` rows (the
validation split of the processing tool) stay gold, so validation still scores against human
references. Sampling is the evaluation protocol's (temperature 1, top-k off, top-p 1, ≤ 256 new
tokens), batched with the KV-cache sampler. `{save}/generation.json` records the teacher, the
settings and counts.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from minillm import args as cli
from minillm.data.processing import (
    DataFormatError,
    normalize_instruction_record,
    read_jsonl,
)
from minillm.data.templates import build_prompt
from minillm.distributed import init_distributed
from minillm.eval.evaluation import generate_texts
from minillm.fileio import atomic_write_json, atomic_write_jsonl
from minillm.log import RunLogger, peak_memory_mib
from minillm.modeling import DTYPES, load_for_inference
from minillm.train.checkpoint import resolve_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_args(parser)
    cli.add_generation_args(parser)
    parser.add_argument("--pick", default="rougeL", choices=("rougeL", "valid_loss"),
                        help="which best.json entry a run folder given as --model-path resolves to")
    parser.add_argument("--data-dir", required=True, help="folder holding raw.jsonl")
    parser.add_argument("--save", required=True, help="output folder for raw.jsonl and generation.json")
    parser.add_argument("--dev-num", type=int, default=1000, help="the first N rows (validation) keep their gold output")
    parser.add_argument("--max-prompt-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args = cli.validate(args)
    raw_path = Path(args.data_dir) / "raw.jsonl"
    try:
        rows = [normalize_instruction_record(record, str(raw_path), line) for line, record in read_jsonl(raw_path)]
    except (DataFormatError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    dist_info = init_distributed()
    log = RunLogger(args.save, dist_info.rank, name="generate_log")
    log.config({"entrypoint": "generate", "world_size": dist_info.world_size, **vars(args)})
    model_path = resolve_checkpoint(args.model_path, args.pick)
    model, tokenizer = load_for_inference(model_path, args.dtype, dist_info.device, args.tokenizer_path)

    dev = max(args.dev_num, 0)
    prompts = [tokenizer.encode(build_prompt(row["instruction"], row["input"]), add_special_tokens=False)
               for row in rows[dev:]]
    log.info(f"teacher {model_path}: sampling {len(prompts)} responses ({dev} validation rows stay gold)")
    started = time.time()
    out = generate_texts(model, tokenizer, prompts, cli.sampling_config(args), seed=args.seed,
                         dist_info=dist_info, max_prompt_length=args.max_prompt_length,
                         batch_tokens=args.eval_batch_tokens, logger=log, desc="teacher outputs")
    texts = out.texts
    seconds = time.time() - started
    if dist_info.is_main:
        generated = [{**row, "output": text, "gold_output": row["output"]} for row, text in zip(rows[dev:], texts)]
        atomic_write_jsonl(Path(args.save) / "raw.jsonl", rows[:dev] + generated)
        empty = sum(1 for text in texts if not text.strip())
        meta = {"teacher": str(model_path), "source": str(raw_path), "rows": len(rows), "gold_rows": dev,
                "generated_rows": len(texts), "empty_responses": empty, "seed": args.seed,
                "sampling": vars(cli.sampling_config(args)), "max_prompt_length": args.max_prompt_length,
                "seconds": round(seconds, 1), "tokens": int(sum(out.lengths)),
                "peak_memory_mib": round(peak_memory_mib(dist_info.device), 1), "world_size": dist_info.world_size}
        atomic_write_json(Path(args.save) / "generation.json", meta)
        log.info(f"wrote {args.save}/raw.jsonl: {len(texts)} teacher responses ({empty} empty) "
                 f"in {seconds:.1f} s")
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
