"""Convert a rationale source into the rationale row format of minillm/data/rationale.py.

  python tools/import_rationales.py --source cqa --input ../shared/data/dss/cqa --split train \\
      --labels teacher --out data/dss/cqa/train_teacher.jsonl
  python tools/import_rationales.py --source gsm8k --input ../shared/data/gsm8k --split test --out ...
  python tools/import_rationales.py --source synthetic --input data/tiny/raw.jsonl --out ...
  python tools/import_rationales.py --source raw --input RAW_DIR --out ...      # RAW_DIR's own rationales
  python tools/import_rationales.py --source gsm8k --input ../shared/data/gsm8k --out ... \
      --same-questions-as RAW_DIR/raw.jsonl --dev-num 50 --max-train-rows 200

--input is a file or a folder: cqa/svamp need the DSS release folder (`{name}_{split}.json` and
`llm/{split}_CoT_<i>.json`); gsm8k's folder holds `{split}.jsonl`; a synthetic folder (from
tools/make_tiny_default.py) or a raw one (any RAW_DIR whose rows carry `rationale` and `answer`)
holds raw.jsonl (train, dev rows first) and valid.jsonl (test).
--same-questions-as (train split): the step-by-step rows must hold that file's questions in its
order (its first --dev-num rows are the validation split of both; with --max-train-rows only the
first dev-num + max-train-rows rows count), else the run stops naming the first row that differs.
Writes FILE.jsonl and FILE.stats.json (rows read/written/dropped; for PaLM outputs the parse
failures per reason, the failure rate and the teacher labels' accuracy against gold) and
prints the failure rate. Training rows whose PaLM output fails to parse are dropped, test rows
are kept without a rationale (see minillm/data/rationale.py). Bad input stops the run with
`file:line: field '...'` and exit status 1, writing nothing.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minillm.data.processing import DataFormatError, normalize_instruction_record, read_jsonl
from minillm.data.rationale import (
    LABEL_CHOICES,
    FieldError,
    ParseStats,
    convert_cqa_row,
    convert_gsm8k_row,
    convert_svamp_row,
    convert_raw_row,
    question_mismatch,
    require_string,
    sidecar_path,
)
from minillm.fileio import atomic_write_json, atomic_write_jsonl

SOURCES = ("synthetic", "raw", "gsm8k", "cqa", "svamp")
OWN_RATIONALES = ("synthetic", "raw", "gsm8k")  # human-written rationales in the records themselves
SPLITS = ("train", "test")
SYNTHETIC_FILES = {"train": "raw.jsonl", "test": "valid.jsonl"}
_COT_FILE = re.compile(r"(?P<split>\w+)_CoT_(?P<index>\d+)\.json")

LocatedRecord = tuple[int, dict[str, Any]]  # (line number, record), as read_jsonl yields them


def records_file(source: str, input_path: Path, split: str) -> Path:
    """The JSON-lines file holding the split's records."""
    if source in ("cqa", "svamp"):
        if not input_path.is_dir():
            raise FileNotFoundError(f"--input {input_path}: expected the DSS release folder of {source} "
                                    f"(holding {source}_{split}.json and llm/)")
        return input_path / f"{source}_{split}.json"
    if not input_path.is_dir():
        return input_path
    return input_path / (SYNTHETIC_FILES[split] if source in ("synthetic", "raw") else f"{split}.jsonl")


def cot_files(folder: Path, split: str) -> list[Path]:
    """llm/{split}_CoT_0.json, _1, ... in numeric order; a gap in the numbering is an error."""
    found = {}
    for path in folder.glob(f"{split}_CoT_*.json"):
        match = _COT_FILE.fullmatch(path.name)
        if match and match.group("split") == split:
            found[int(match.group("index"))] = path
    if not found:
        raise FileNotFoundError(f"no PaLM outputs {folder}/{split}_CoT_<i>.json")
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise FileNotFoundError(f"{folder}/{split}_CoT_{missing[0]}.json is missing (found up to _{max(found)})")
    return [found[index] for index in sorted(found)]


def read_llm_outputs(folder: Path, split: str) -> tuple[list[str], list[Path]]:
    """The PaLM continuations of a split, in row order: the concatenated JSON lists of its files."""
    files = cot_files(folder, split)
    outputs: list[str] = []
    for path in files:
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise DataFormatError(path, error.lineno, None, f"malformed JSON: {error.msg}") from None
        if not isinstance(items, list):
            raise DataFormatError(path, 1, None, f"expected a JSON list of strings, got {type(items).__name__}")
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise DataFormatError(path, 1, f"[{index}]", f"expected a string, got {type(item).__name__}")
        outputs.extend(items)
    return outputs, files


def check_counts(records: list[LocatedRecord], outputs: list[str], path: Path, files: list[Path]) -> None:
    """One PaLM output per record, or the files do not belong to this split."""
    if len(outputs) < len(records):
        line = records[len(outputs)][0]
        raise DataFormatError(path, line, None, f"no PaLM output for this row: {files[0].parent}/"
                              f"{files[0].name.split('_CoT_')[0]}_CoT_*.json hold {len(outputs)} outputs "
                              f"for {len(records)} rows")
    if len(outputs) > len(records):
        raise DataFormatError(files[-1], 1, None, f"{len(outputs)} PaLM outputs in {len(files)} files for the "
                              f"{len(records)} rows of {path}: they do not belong to this split")


@contextlib.contextmanager
def field_errors_located(path: Path, line: int) -> Iterator[None]:
    """Turn a record's FieldError into a DataFormatError naming the file and line."""
    try:
        yield
    except FieldError as error:
        raise DataFormatError(path, line, error.field, error.message) from None


def import_rows(source: str, input_path: Path, split: str,
                labels: str) -> tuple[list[dict], dict[str, Any], ParseStats | None, list[int]]:
    """Rows in the rationale format, the stats to write beside them, for PaLM outputs the parse
    statistics, and each row's line in the records file; raises DataFormatError, OSError or
    ValueError on bad input."""
    if labels == "teacher" and source in OWN_RATIONALES:
        raise ValueError(f"--labels teacher: {source} has no teacher labels (its rationales are human-written)")
    if labels == "teacher" and split == "test":
        raise ValueError("--labels teacher: the test split is scored against gold labels")
    path = records_file(source, input_path, split)
    records = list(read_jsonl(path))
    stats: dict[str, Any] = {"source": source, "split": split, "labels": labels, "records_file": str(path)}
    rows: list[dict] = []
    lines: list[int] = []
    parse_stats = None
    if source in OWN_RATIONALES:
        for index, (line, record) in enumerate(records):
            with field_errors_located(path, line):
                rows.append(convert_gsm8k_row(record, f"{source}-{split}-{index}") if source == "gsm8k"
                            else convert_raw_row(record, f"{source}-{split}-{index}", source))
            lines.append(line)
    else:
        outputs, files = read_llm_outputs(path.parent / "llm", split)
        check_counts(records, outputs, path, files)
        stats["llm_output_files"] = [str(file) for file in files]
        parse_stats = ParseStats()
        keep_failed = split == "test"  # evaluation rows are never dropped
        for index, ((line, record), output) in enumerate(zip(records, outputs)):
            with field_errors_located(path, line):
                if source == "cqa":
                    row_id = require_string(record, "id")
                    conversion = convert_cqa_row(record, output, labels, keep_failed)
                else:
                    row_id = f"svamp-{split}-{index}"
                    conversion = convert_svamp_row(record, row_id, output, labels, keep_failed)
            parse_stats.record(row_id, output, conversion.failure, conversion.teacher_correct)
            if conversion.row is not None:
                rows.append(conversion.row)
                lines.append(line)
    stats.update(rows_read=len(records), rows_written=len(rows), rows_dropped=len(records) - len(rows),
                 rows_without_rationale=sum(1 for row in rows if not row["rationale"]),
                 parse=parse_stats.to_json() if parse_stats is not None else None)
    return rows, stats, parse_stats, lines


def check_same_questions(rows: list[dict], lines: list[int], records_path: Path, reference: Path, dev_num: int,
                         max_train_rows: int | None) -> None:
    """ValueError unless `rows` hold `reference`'s questions in its order (see --same-questions-as)."""
    located = [(str(reference), line, normalize_instruction_record(record, reference, line))
               for line, record in read_jsonl(reference)]
    keep = dev_num + max_train_rows if max_train_rows else None
    problem = question_mismatch(located, [(str(records_path), line, row) for line, row in zip(lines, rows)], keep)
    if problem:
        raise ValueError(f"the step-by-step rows do not hold the instruction rows' questions in the same split: "
                         f"{problem}{f' (the first {keep} rows compared)' if keep else ''}. Both files' first "
                         f"DEV_NUM={dev_num} rows are the validation split, so row k of one must ask what row k of "
                         f"the other asks: convert both from the same file, in the same order, or give RAW_DIR's "
                         f"rows `rationale` and `answer` fields and derive the step-by-step rows from them "
                         f"(--source raw)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, choices=SOURCES)
    parser.add_argument("--input", required=True, type=Path, help="the source's file or folder (see above)")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("--labels", default="gold", choices=LABEL_CHOICES,
                        help="label task target of cqa/svamp: the gold answer or PaLM's (train split only)")
    parser.add_argument("--out", required=True, type=Path, help="output FILE.jsonl (stats: FILE.stats.json)")
    parser.add_argument("--same-questions-as", type=Path, metavar="RAW_JSONL",
                        help="the instruction rows (RAW_DIR/raw.jsonl) whose questions and order these must share")
    parser.add_argument("--dev-num", type=int, default=0, help="DEV_NUM: validation rows at the top of both files")
    parser.add_argument("--max-train-rows", type=int, default=0, help="MAX_TRAIN_ROWS: training rows compared (0: all)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rows, stats, parse_stats, lines = import_rows(args.source, args.input, args.split, args.labels)
        if args.same_questions_as:
            check_same_questions(rows, lines, records_file(args.source, args.input, args.split),
                                 args.same_questions_as, args.dev_num, args.max_train_rows or None)
    except (DataFormatError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    stats["input"] = str(args.input)
    stats_path = sidecar_path(args.out, "stats")
    atomic_write_jsonl(args.out, rows)
    atomic_write_json(stats_path, stats)
    print(f"{args.source} {args.split}: {stats['rows_read']} rows read, {stats['rows_written']} written to "
          f"{args.out}, {stats['rows_dropped']} dropped, {stats['rows_without_rationale']} without a rationale")
    if parse_stats is None:
        print("failure rate: n/a (human-written rationales, no model output to parse)")
    else:
        accuracy = stats["parse"]["teacher_label_accuracy"]
        print(f"PaLM outputs: {parse_stats.summary()}; teacher labels right on {accuracy}% of the "
              f"{parse_stats.teacher_scored} parsed")
    print(f"stats: {stats_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
