"""Pay for the teacher once: one teacher pass over a processed dataset, keeping at every supervised
position the teacher's top-k tokens, their log-probabilities and the log of the remaining mass
(format: minillm/data/teacher_cache.py). KD, DSS-KD and MiniLLM's pretraining KD term then read it with
`--teacher-cache DIR` instead of running the teacher.

  python tools/cache_teacher.py --teacher-model-path TEACHER_RUN --data-dir PROCESSED --max-length 512
  deepspeed --num_gpus N tools/cache_teacher.py ...        (torchrun works too: items are shared out)

`--max-length` and `--kd-temperature` must be the training run's (both are checked when the cache
is read). The cache is built under a hidden `.{name}.partial` folder beside `--out` (default
`{data-dir}/teacher_cache`) in blocks of `--block-items` items; each finished block is recorded with
the sha256 of its records, so an interrupted run started again with the same settings (and any
number of ranks) does only the missing blocks, and readers can check every block. The header is
written last and the folder renamed into place at the end: a reader never sees a half-written cache.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from minillm.data.datasets import TokenDataset, collate_sft  # noqa: E402
from minillm.data.teacher_cache import (  # noqa: E402
    HEADER,
    block_items_range,
    dataset_fingerprint,
    default_cache_dir,
    expected_header,
    record_dtype,
    records_sha256,
    supervised_counts,
    teacher_weights_sha256,
)
from minillm.distributed import init_distributed  # noqa: E402
from minillm.fileio import atomic_write_json, file_sha256  # noqa: E402
from minillm.losses import IGNORE_INDEX, top_k_with_tail  # noqa: E402
from minillm.modeling import (  # noqa: E402
    DTYPES,
    check_same_tokenizer,
    inference_dtype,
    load_model,
    load_tokenizer,
)
from minillm.train.checkpoint import barrier, resolve_checkpoint  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-model-path", required=True, help="a model folder, or a training run folder")
    parser.add_argument("--teacher-pick", default="rougeL", choices=("rougeL", "valid_loss"),
                        help="which best.json entry a teacher run folder resolves to")
    parser.add_argument("--data-dir", required=True, help="processed folder (train_0/valid_0 .bin/.idx)")
    parser.add_argument("--splits", nargs="+", default=["train", "valid"],
                        help="splits to cache; absent ones are skipped (default: train valid)")
    parser.add_argument("--max-length", type=int, default=512, help="the training run's --max-length")
    parser.add_argument("--top-k", type=int, default=64, help="tokens kept per position (≥ vocabulary = exact)")
    parser.add_argument("--kd-temperature", type=float, default=1.0, help="the training run's --kd-temperature")
    parser.add_argument("--out", help="cache folder (default: {data-dir}/teacher_cache)")
    parser.add_argument("--batch-size", type=int, default=16, help="items per teacher forward, per rank")
    parser.add_argument("--block-items", type=int, default=1024, help="items per resumable unit of work")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="the teacher's compute dtype")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete cache made with other settings")
    parser.add_argument("--stop-after-blocks", type=int, default=0,
                        help="leave after this many blocks per rank (time-boxed jobs; run again to continue)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for flag in ("max_length", "top_k", "batch_size", "block_items"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be positive")
    if not args.kd_temperature > 0:
        parser.error("--kd-temperature must be positive")
    args.out = Path(args.out) if args.out else default_cache_dir(args.data_dir)
    return args


@torch.no_grad()
def write_block(teacher: torch.nn.Module, dataset: TokenDataset, items: range, records: np.memmap,
                offsets: np.ndarray, args: argparse.Namespace, vocab_size: int, pad_id: int,
                device: torch.device) -> None:
    """The records of `items` (consecutive, so their records are one contiguous run)."""
    for start in range(items.start, items.stop, args.batch_size):
        chunk = range(start, min(start + args.batch_size, items.stop))
        batch = collate_sft([dataset.example(i) for i in chunk], pad_id)
        logits = teacher(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                         position_ids=batch["position_ids"].to(device)).logits
        # The same scaling as minillm.losses.divergence applies to a live teacher's logits.
        supervised = logits[(batch["labels"] != IGNORE_INDEX).to(device)][:, :vocab_size].float()
        ids, log_probs = top_k_with_tail((supervised / args.kd_temperature).log_softmax(-1), args.top_k)
        first, last = int(offsets[chunk.start]), int(offsets[chunk.stop])
        if last - first != len(ids):
            raise RuntimeError(f"items {chunk.start}..{chunk.stop - 1}: {len(ids)} supervised positions, the "
                               f"index expects {last - first}")
        records["ids"][first:last] = ids.cpu().numpy()
        records["log_probs"][first:last] = log_probs.cpu().numpy()


def done_blocks(partial: Path, split: str) -> dict[int, str]:
    """Blocks finished by any rank of any earlier attempt → the sha256 of their records."""
    return {int(block): digest for path in partial.glob(f"{split}.done.*.json")
            for block, digest in json.loads(path.read_text()).items()}


def cache_split(teacher, dataset: TokenDataset, partial: Path, args, vocab_size: int, k: int, pad_id: int,
                dist_info) -> tuple[dict, bool]:
    """Fill `{split}.bin/.idx` in `partial`; returns (the split's header entry, whether every block is done)."""
    split = dataset.split
    counts = supervised_counts(dataset)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype("<i8")
    dtype = record_dtype(k)
    bin_path, idx_path = partial / f"{split}.bin", partial / f"{split}.idx"
    if dist_info.is_main and not bin_path.exists():
        offsets.tofile(idx_path)
        with open(bin_path, "wb") as handle:
            handle.truncate(int(offsets[-1]) * dtype.itemsize)
    barrier()
    blocks = range(-(-len(dataset) // args.block_items))
    remaining = sorted(set(blocks) - done_blocks(partial, split).keys())
    mine = remaining[dist_info.rank::dist_info.world_size]
    if args.stop_after_blocks:
        mine = mine[:args.stop_after_blocks]
    done_file = partial / f"{split}.done.{dist_info.rank}.json"
    finished = json.loads(done_file.read_text()) if done_file.exists() else {}
    records = np.memmap(bin_path, mode="r+", dtype=dtype) if offsets[-1] else np.zeros(0, dtype)
    for block in mine:
        items = block_items_range(block, args.block_items, len(dataset))
        if len(records):
            write_block(teacher, dataset, items, records, offsets, args, vocab_size, pad_id, dist_info.device)
            records.flush()  # on disk before the block is recorded as done
        finished[str(block)] = records_sha256(records[int(offsets[items.start]):int(offsets[items.stop])])
        atomic_write_json(done_file, finished)
    barrier()
    done = done_blocks(partial, split)
    complete = not set(blocks) - done.keys()
    info = {"dataset": dataset_fingerprint(args.data_dir, split, args.max_length), "items": len(dataset),
            "positions": int(offsets[-1]), "idx_sha256": file_sha256(idx_path),
            "block_sha256": [done.get(block) for block in blocks]}
    return info, complete


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dist_info = init_distributed()
    teacher_path = resolve_checkpoint(args.teacher_model_path, args.teacher_pick)
    tokenizer = load_tokenizer(teacher_path)
    vocab_size = check_same_tokenizer(tokenizer, tokenizer)
    header = expected_header(teacher_path=teacher_path, weights_sha256=teacher_weights_sha256(teacher_path),
                             tokenizer=tokenizer, vocab_size=vocab_size, k=args.top_k,
                             temperature=args.kd_temperature, teacher_dtype=args.dtype, block_items=args.block_items)
    datasets = [TokenDataset(args.data_dir, split, args.max_length) for split in args.splits
                if Path(args.data_dir, f"{split}_0.bin").is_file()]
    if not datasets:
        raise SystemExit(f"error: {args.data_dir} has none of the splits {args.splits} (no {{split}}_0.bin)")
    splits = {d.split: dataset_fingerprint(args.data_dir, d.split, args.max_length) for d in datasets}
    if (args.out / HEADER).is_file():
        existing = json.loads((args.out / HEADER).read_text())
        # --block-items only splits the work (and the checksums): a cache in other blocks is as good.
        if all(existing.get(key) == value for key, value in header.items() if key != "block_items") and \
                {s: existing["splits"].get(s, {}).get("dataset") for s in splits} == splits:
            print(f"{args.out} is complete and up to date: nothing to do")
            return 0
        if not args.overwrite:
            raise SystemExit(f"error: {args.out} holds a teacher cache made with other settings; "
                             f"give --overwrite to replace it")
    partial = args.out.parent / f".{args.out.name}.partial"
    plan = {**header, "splits": splits}
    if dist_info.is_main:
        plan_file = partial / "plan.json"
        if partial.exists() and (not plan_file.is_file() or json.loads(plan_file.read_text()) != plan):
            shutil.rmtree(partial)  # an attempt with other settings: nothing in it can be reused
        if partial.exists():
            print(f"resuming the interrupted cache in {partial}")
        else:
            partial.mkdir(parents=True)
            atomic_write_json(plan_file, plan)
    barrier()
    teacher = load_model(teacher_path, inference_dtype(args.dtype, dist_info.device), dist_info.device).eval()
    entries, complete = {}, True
    for dataset in datasets:
        entries[dataset.split], done = cache_split(teacher, dataset, partial, args, vocab_size, header["k"],
                                                   tokenizer.pad_token_id, dist_info)
        complete = complete and done
    if not complete:
        if dist_info.is_main:
            print(f"stopped with blocks left; run the same command again to continue ({partial})")
        return 0
    if dist_info.is_main:
        for path in [*partial.glob("*.done.*.json"), partial / "plan.json"]:
            path.unlink()
        atomic_write_json(partial / HEADER, {**header, "splits": entries})
        if args.out.exists():
            shutil.rmtree(args.out)
        partial.rename(args.out)
        positions = sum(entry["positions"] for entry in entries.values())
        items = ", ".join(f"{split}: {entry['items']} items" for split, entry in entries.items())
        print(f"wrote {args.out}: top-{header['k']} of {vocab_size} tokens at {positions} positions ({items})")
    barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
