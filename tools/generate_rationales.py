"""Teacher rationales and labels for distilling step-by-step, from any local causal LM.

  python tools/generate_rationales.py --model-path LLM --input rows.jsonl --out teacher.jsonl \\
      --template prompts/rationales/fewshot_cot.txt --max-prompt-length 768
  python tools/generate_rationales.py --model-path DSS_TEACHER_RUN --input rows.jsonl --out teacher.jsonl \\
      --template prompts/rationales/dss_rationale.txt --label-template prompts/rationales/dss_label.txt
  deepspeed --num_gpus N tools/generate_rationales.py ...     (prompts are sharded over ranks)

Input: rows in the rationale format (minillm/data/rationale.py) or any instruction JSON-lines file
(`instruction`, `input`, `output`). Each prompt is a template file filled with the row
(prompts/rationales/README.md). The rationale pass (`--template`) asks for chain of thought:
its continuation is cut at the answer marker into rationale and label ("... So the answer is X"),
so the label is the one the rationale concludes (one pass, as PaLM's CoT in distilling
step-by-step); `--cot-label-format` writes that label in the dataset's label style (e.g. "The
answer is {label}."). A label pass (`--label-template`, a teacher trained with the `[label]`
task prefix) answers directly: with `--label-pass no-rationale` only the rows that get no
rationale (open-ended questions under `--rationale-rows with-rationale`); with `--label-pass all`
every row, the label then being the label pass's (two passes), kept only when it agrees with the
rationale's own answer under `--consistency-filter`.

Output FILE.jsonl: the first `--dev-num` rows (the validation split) as they are, gold; then
every row whose generation gave a rationale and a label, with `output` = the teacher's label,
`rationale`, `answer` = the teacher's answer, `gold_answer` and `gold_output` = the input's,
`rationale_source` = the model path, `label_source` = "teacher". Rows whose generation fails
are dropped and counted by reason in FILE.stats.json (the failure rate is printed), beside
`consistency_rate` (percent of rationale rows whose rationale concludes the row's label) and
`teacher_label_accuracy` (percent of teacher labels equal to the gold answer);
FILE.meta.json records the model, the settings and each template's path, full text and
SHA-256. Sampling is the evaluation protocol's unless flags change it (`--top-k 1` = greedy).

Too few usable rows fail the run: when more than `--max-failure-rate` percent (default 50) of the
generated rows are dropped, FILE.jsonl is not written (a stage downstream would only find it
empty or thin), the stats and meta files are, and the error names the teacher, the templates and
the stats file (the comparison driver's MAX_RATIONALE_FAILURE_RATE sets the flag).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

from minillm import args as cli
from minillm.data.processing import (
    DataFormatError,
    normalize_instruction_record,
    read_jsonl,
)
from minillm.data.rationale import (
    EMPTY_LABEL,
    ParsedChainOfThought,
    ParseStats,
    as_rationale_row,
    check_template,
    fill_template,
    parse_chain_of_thought,
    parse_teacher_outputs,
    sidecar_path,
    teacher_answer,
    teacher_row,
)
from minillm.distributed import init_distributed
from minillm.eval.evaluation import generate_texts
from minillm.fileio import atomic_write_json, atomic_write_jsonl
from minillm.log import RunLogger
from minillm.metrics import answer_correct
from minillm.modeling import DTYPES, load_for_inference
from minillm.train.checkpoint import resolve_checkpoint


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_args(parser)
    cli.add_generation_args(parser)
    parser.add_argument("--batch-tokens", dest="eval_batch_tokens", type=int, default=argparse.SUPPRESS,
                        help="same as --eval-batch-tokens")
    parser.add_argument("--pick", default="rougeL", choices=("rougeL", "valid_loss"),
                        help="which best.json entry a run folder given as --model-path resolves to")
    parser.add_argument("--input", required=True, type=Path, help="JSON-lines rows (rationale format or instruction data)")
    parser.add_argument("--out", required=True, type=Path, help="output FILE.jsonl (+ FILE.stats.json, FILE.meta.json)")
    parser.add_argument("--template", required=True, type=Path, help="prompt template of the rationale (or CoT) pass")
    parser.add_argument("--label-template", type=Path,
                        help="prompt template of a separate label pass; absent = parse the label from the CoT text")
    parser.add_argument("--dev-num", type=int, default=0, help="the first N rows (validation) stay gold")
    parser.add_argument("--rationale-rows", choices=("all", "with-rationale"), default="all",
                        help="with-rationale: only rows whose input has a rationale get a teacher rationale; "
                             "the others (open-ended questions) get only a teacher label (needs --label-template)")
    parser.add_argument("--label-pass", choices=("all", "no-rationale"), default="all",
                        help="which rows the --label-template pass labels: all (two passes) or only the rows "
                             "without a rationale (the others take the label their chain of thought concludes)")
    parser.add_argument("--cot-label-format", default="{label}",
                        help="how a label parsed from chain of thought is written as the row's output")
    parser.add_argument("--consistency-filter", action="store_true",
                        help="two passes: drop rows whose label disagrees with the rationale's own answer")
    parser.add_argument("--max-prompt-length", type=int, default=512,
                        help="longer prompts keep their last tokens (counted as truncated_prompts)")
    parser.add_argument("--max-failure-rate", type=float, default=50.0,
                        help="percent of generated rows that may be dropped; above it nothing is written to --out "
                             "and the run fails")
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def read_template(path: Path) -> dict[str, str]:
    """A template file's path, full text and SHA-256 (of its bytes), as recorded in the meta."""
    data = path.read_bytes()
    return {"path": str(path), "text": data.decode("utf-8"), "sha256": hashlib.sha256(data).hexdigest()}


def template_body(template: dict[str, str]) -> str:
    """The template proper: the newline that ends the file is not part of it."""
    text = template["text"]
    return text[:-1] if text.endswith("\n") else text


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Input rows in the rationale format (missing fields get gold / no-rationale defaults)."""
    return [as_rationale_row(normalize_instruction_record(record, str(path), line), path.stem,
                             f"{path.stem}-{index}")
            for index, (line, record) in enumerate(read_jsonl(path))]


def labels_agree(first: str, second: str, gold_answer: str) -> bool:
    """Whether two labels state the same answer (in the gold answer's kind; open-ended: same text)."""
    if not gold_answer:
        return first.strip() == second.strip()
    return teacher_answer(first, gold_answer) == teacher_answer(second, gold_answer) != ""


def teacher_rows(rows: list[dict[str, Any]], rationale_texts: list[str | None], label_texts: list[str | None],
                 model: str, cot_label_format: str = "{label}",
                 consistency_filter: bool = False) -> tuple[list[dict[str, Any]], ParseStats, dict[str, Any]]:
    """Rows relabelled from the generations, the parse failures and the consistency counts. A
    row whose generation gives no rationale or no label is dropped, never blanked. A rationale
    text of None means the row was not asked for one: it keeps rationale "" and needs a label.
    A label text of None means no label pass for the row: its label is its chain of thought's."""
    stats = ParseStats()
    kept = []
    rationale_rows = consistent_rows = 0
    for row, rationale_text, label_text in zip(rows, rationale_texts, label_texts):
        consistent = None
        if rationale_text is None:  # not asked for a rationale: only the label counts
            label = (label_text or "").strip()
            parsed = ParsedChainOfThought("", label) if label else ParsedChainOfThought("", "", EMPTY_LABEL)
            rationale_text = ""
        else:
            chain = parse_chain_of_thought(rationale_text)
            if label_text is None:  # one pass: the label is the one the rationale concludes
                parsed = (ParsedChainOfThought(chain.rationale, cot_label_format.format(label=chain.label))
                          if chain.ok else chain)
                consistent = chain.ok
            else:  # two passes: the rationale's own answer (if any) must agree with the label pass
                parsed = parse_teacher_outputs(chain.rationale if chain.ok else rationale_text, label_text)
                consistent = chain.ok and parsed.ok and labels_agree(chain.label, parsed.label, row["gold_answer"])
            rationale_rows += 1
            consistent_rows += int(consistent)
        shown = rationale_text if label_text is None else f"{rationale_text}\n[label] {label_text}"
        gold_answer = row["gold_answer"]
        correct = answer_correct(parsed.label, gold_answer) if parsed.ok and gold_answer else None
        stats.record(row["id"], shown, parsed.failure, correct)
        if parsed.ok and not (consistency_filter and consistent is False):
            kept.append(teacher_row(row, parsed.rationale, parsed.label, model))
    consistency = {"rationale_rows": rationale_rows, "consistent_rows": consistent_rows,
                   "consistency_rate": round(100.0 * consistent_rows / rationale_rows, 4) if rationale_rows else None,
                   "teacher_label_accuracy": stats.to_json()["teacher_label_accuracy"]}
    return kept, stats, consistency


def too_few_rows(counts: dict[str, int], max_failure_rate: float) -> float | None:
    """The percent of generated rows dropped when it is above `max_failure_rate`, else None."""
    if not counts["generated_rows"]:
        return None
    dropped = 100.0 * counts["rows_dropped"] / counts["generated_rows"]
    return dropped if dropped > max_failure_rate else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args = cli.validate(args)
    if args.rationale_rows == "with-rationale" and args.label_template is None:
        print("error: --rationale-rows with-rationale needs --label-template", file=sys.stderr)
        return 1
    if "{label}" not in args.cot_label_format:
        print(f"error: --cot-label-format {args.cot_label_format!r} has no {{label}}", file=sys.stderr)
        return 1
    try:
        templates = {"template": read_template(args.template)}
        if args.label_template is not None:
            templates["label_template"] = read_template(args.label_template)
        for template in templates.values():  # a bad template fails here, before any model loads
            check_template(template_body(template))
        rows = read_rows(args.input)
    except (DataFormatError, OSError, UnicodeDecodeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    dist_info = init_distributed()
    log = RunLogger(args.out.parent, dist_info.rank, name=sidecar_path(args.out, "log").stem)
    model_path = resolve_checkpoint(args.model_path, args.pick)
    model, tokenizer = load_for_inference(model_path, args.dtype, dist_info.device, args.tokenizer_path)

    dev = max(args.dev_num, 0)
    generated_rows = rows[dev:]
    wants_rationale = [args.rationale_rows == "all" or bool(row["rationale"]) for row in generated_rows]
    asked = {"template": wants_rationale,
             "label_template": [args.label_pass == "all" or not wants for wants in wants_rationale]}
    sampling = cli.sampling_config(args)
    mode = "two_task" if args.label_template is not None and args.label_pass == "all" else "chain_of_thought"
    log.info(f"teacher {model_path}: {len(generated_rows)} rows to generate ({min(dev, len(rows))} validation "
             f"rows stay gold); {'two passes (rationale, label)' if len(templates) == 2 else 'chain of thought'}")
    started = time.time()
    texts: dict[str, list[str]] = {}
    truncated: dict[str, int] = {}  # per pass: prompts longer than --max-prompt-length
    for name, template in templates.items():
        body = template_body(template)
        chosen = [row for row, ask in zip(generated_rows, asked[name]) if ask]
        prompts = [tokenizer.encode(fill_template(body, row["instruction"], row["input"]), add_special_tokens=False,
                                    verbose=False)  # long few-shot prompts are expected; they are counted below
                   for row in chosen]
        truncated[name] = sum(1 for prompt in prompts if len(prompt) > args.max_prompt_length)
        generated = iter(generate_texts(model, tokenizer, prompts, sampling, seed=args.seed, dist_info=dist_info,
                                        max_prompt_length=args.max_prompt_length,
                                        batch_tokens=args.eval_batch_tokens, logger=log,
                                        desc=name.replace("_", " ")).texts)
        texts[name] = [next(generated) if ask else None for ask in asked[name]]
    seconds = time.time() - started
    status = 0
    if dist_info.is_main:
        kept, stats, consistency = teacher_rows(
            generated_rows, texts["template"], texts.get("label_template", [None] * len(generated_rows)),
            str(model_path), args.cot_label_format, args.consistency_filter)
        counts = {"rows": len(rows), "gold_rows": len(rows[:dev]), "generated_rows": len(generated_rows),
                  "teacher_rows_written": len(kept), "rows_dropped": len(generated_rows) - len(kept)}
        dropped = too_few_rows(counts, args.max_failure_rate)
        if dropped is None:
            atomic_write_jsonl(args.out, rows[:dev] + kept)
        stats_path = sidecar_path(args.out, "stats")
        atomic_write_json(stats_path, {**counts, **consistency, "parse": stats.to_json()})
        atomic_write_json(sidecar_path(args.out, "meta"), {
            "model": str(model_path), "input": str(args.input), **templates,
            "mode": mode, **counts,
            "rationale_rows": args.rationale_rows, "label_pass": args.label_pass,
            "cot_label_format": args.cot_label_format, "consistency_filter": args.consistency_filter,
            "truncated_prompts": truncated, "max_prompt_length": args.max_prompt_length, "seed": args.seed,
            "sampling": vars(sampling), "dtype": args.dtype, "seconds": round(seconds, 1),
            "world_size": dist_info.world_size})
        outcome = f"wrote {args.out}" if dropped is None else f"{args.out} NOT written"
        log.info(f"{outcome}: {len(rows[:dev])} gold rows + {len(kept)} teacher rows; "
                 f"{stats.summary()}; rationales concluding their label: {consistency['consistency_rate']}%; "
                 f"teacher labels right: {consistency['teacher_label_accuracy']}%" + (f"; prompts longer than --max-prompt-length {args.max_prompt_length} "
                                         f"lost their beginning: {truncated}" if any(truncated.values()) else ""))
        if dropped is not None:
            used = " and ".join(template["path"] for template in templates.values())
            log.info(f"error: teacher {model_path} gave usable rows for only {len(kept)} of {len(generated_rows)} "
                     f"prompts ({dropped:.1f}% dropped > --max-failure-rate {args.max_failure_rate:g}; {stats.summary()}) "
                     f"with template {used}; see {stats_path} for examples. Nothing was written to {args.out}. "
                     f"Train the teacher further (e.g. TEACHER_EPOCHS / DSS_TEACHER_EPOCHS), or accept the loss with "
                     f"MAX_RATIONALE_FAILURE_RATE (the driver) / --max-failure-rate")
            status = 1
    log.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
