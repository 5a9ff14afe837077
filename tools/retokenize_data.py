"""A processed data folder written again with another tokenizer: the same texts, the student's ids
(cross-tokenizer distillation, docs/cross-tokenizer.md).

  python tools/retokenize_data.py --data-dir processed_data/stories --data-tokenizer checkpoints/stories260K \
      --tokenizer checkpoints/stories-bpe512 --out processed_data/stories-bpe512

Reads every `{variant}/{split}_0.bin/.idx` under `--data-dir` (a folder of processed folders such
as tools/make_stories_data.py's `full/` and `prompt/`, or one processed folder), turns each item
into (prompt text, response bytes) with the tokenizer it was made with
(minillm.data.cross_tokenizer.TextCodec.split_text: the response spelled token by token, so its
leading space survives) and encodes prompt + response as ONE text with `--tokenizer`; the response
is the tokens from the first that starts at or after the response's first byte (a token spanning
the boundary stays in the prompt; such items are counted). Prompt-only items are re-encoded
whole. Rows of `{split}.jsonl` are kept, with `prompt`/`output` from the new tokenization; each
folder gets a data manifest naming the new tokenizer and the source files, and `--out` a
`retokenized.json` with, per folder and split, the items, those whose response start moved, and the
longest prompt and item and the mean response in tokens (for --max-prompt-length, --max-length,
--max-new-tokens). Written atomically.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.data.cross_tokenizer import TextCodec  # noqa: E402
from minillm.data.indexed import IndexedDataset, IndexedDatasetWriter, best_dtype, split_id_for  # noqa: E402
from minillm.data.manifest import read_data_manifest, write_data_manifest  # noqa: E402
from minillm.data.processing import read_jsonl  # noqa: E402
from minillm.fileio import atomic_directory, atomic_open, atomic_write_json  # noqa: E402
from minillm.modeling import load_tokenizer  # noqa: E402


def processed_folders(root: Path) -> list[Path]:
    """`root` itself when it holds {split}_0.idx files, else its sub-folders that do."""
    if any(root.glob("*_0.idx")):
        return [root]
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*_0.idx")))
    if not folders:
        raise SystemExit(f"error: {root} holds no processed data ({{split}}_0.idx files), nor do its sub-folders")
    return folders


def retokenize_folder(source: Path, target: Path, old: TextCodec, new: TextCodec, tokenizer_path: str) -> dict:
    """Write every split of `source` into `target` in the new tokenizer; returns per-split counts."""
    counts = {}
    dtype = best_dtype(len(new.tokenizer))
    for index_file in sorted(source.glob("*_0.idx")):
        split = index_file.name[:-len("_0.idx")]
        items = IndexedDataset(str(source / f"{split}_0"))
        rows_file = source / f"{split}.jsonl"
        rows = [row for _, row in read_jsonl(rows_file)] \
            if rows_file.is_file() else [{} for _ in range(len(items))]
        if len(rows) != len(items):
            raise SystemExit(f"error: {rows_file} has {len(rows)} rows but {source}/{split}_0.bin has {len(items)} items")
        shifted, longest_prompt, longest_item, response_total = 0, 0, 0, 0
        with (IndexedDatasetWriter(str(target / f"{split}_0"), dtype) as writer,
              atomic_open(target / f"{split}.jsonl") as texts):
            for k, row in enumerate(rows):
                ids = items[k].tolist()
                if items.split_id in ids:
                    cut = ids.index(items.split_id)
                    prompt_text, response, _ = old.split_text(ids[:cut], ids[cut + 1:])
                    new_ids, response_tokens = new.encode_continuation(prompt_text, response)
                    first = int(response_tokens.positions[0]) if len(response_tokens.positions) else len(new_ids)
                    shifted += bool(len(response_tokens.starts) == 0 or response_tokens.starts[0] != 0)
                    writer.add_item(new_ids[:first] + [split_id_for(dtype)] + new_ids[first:])
                    prompt_ids, response_ids = new_ids[:first], new_ids[first:]
                else:  # a prompt-only (or pretraining) item
                    prompt_ids, response_ids = new.tokenizer(old.tokenizer.decode(ids, skip_special_tokens=True))[
                        "input_ids"], []
                    writer.add_item(prompt_ids)
                longest_prompt = max(longest_prompt, len(prompt_ids))
                longest_item = max(longest_item, len(prompt_ids) + len(response_ids))
                response_total += len(response_ids)
                decode = new.tokenizer.decode
                texts.write(json.dumps({**row, "prompt": decode(prompt_ids, skip_special_tokens=True),
                                        "output": decode(response_ids, skip_special_tokens=True)}) + "\n")
        counts[split] = {"items": len(rows), "response_start_moved": shifted, "longest_prompt": longest_prompt,
                         "longest_item": longest_item, "mean_response_tokens": response_total / max(len(rows), 1)}
    recorded = read_data_manifest(source) or {}
    write_data_manifest(target, tool="tools/retokenize_data.py", tokenizer=new.tokenizer, tokenizer_path=tokenizer_path,
                        settings={"source": str(source), "source_settings": recorded.get("settings", {})},
                        sources=sorted(source.glob("*_0.*")), splits={s: c["items"] for s, c in counts.items()})
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, type=Path, help="a processed folder, or a folder of them")
    parser.add_argument("--data-tokenizer", required=True, help="the tokenizer --data-dir was made with")
    parser.add_argument("--tokenizer", required=True, help="the tokenizer to write the data with")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    old, new = TextCodec(load_tokenizer(args.data_tokenizer)), TextCodec(load_tokenizer(args.tokenizer))
    folders = processed_folders(args.data_dir)
    summary = {}
    with atomic_directory(args.out) as tmp:
        for folder in folders:
            target = tmp if folder == args.data_dir else tmp / folder.name
            target.mkdir(exist_ok=True)
            summary[folder.name] = retokenize_folder(folder, target, old, new, args.tokenizer)
        atomic_write_json(tmp / "retokenized.json", {"source": str(args.data_dir), "tokenizer": args.tokenizer,
                                                     "folders": summary})
    for name, counts in summary.items():
        print(f"{args.out}/{'' if len(folders) == 1 and folders[0] == args.data_dir else name}: "
              + ", ".join(f"{split} {c['items']} items ({c['response_start_moved']} with the response start moved "
                          f"to the next token boundary)" for split, c in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
