"""A teacher cache: the teacher's top-k next-token distribution at every supervised position of a
processed dataset, computed once (tools/cache_teacher.py) and read by the token-level KD objective
instead of a teacher forward pass (`--teacher-cache`).

Layout of a cache folder (by default `{data_dir}/teacher_cache`, beside the data it describes):
  teacher_cache.json   header: format, teacher (path + sha256 of its weight files), tokenizer
                       signature, vocab_size, k, temperature, teacher dtype, block_items, and per
                       split the dataset fingerprint, items, positions, the sha256 of its .idx
                       and of each block's records (block b: items b·block_items onwards).
                       Written last, so a folder without it is never read.
  {split}.idx          int64 [items + 1]: item i's records are rows idx[i]:idx[i+1] of .bin
  {split}.bin          records, one per supervised position in the order of the item's labels:
                       ids int32 [k] (descending teacher probability), log_probs float32 [k + 1]
                       (log p of those ids at `temperature`, then log of the remaining mass)
A reader checks every header field against the run (`check_header`), both files' sizes and the
.idx's sha256 against the header when it opens a split, and each block's sha256 the first time
one of its items is read (so a training run hashes the cache once, spread over its steps, and a
start does not read gigabytes); a mismatch is refused naming the field, or the file and block.
Format 1 caches (no checksums) are refused with the command that rebuilds them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from minillm.data.datasets import Example, TokenDataset
from minillm.data.manifest import tokenizer_signature
from minillm.fileio import file_sha256

HEADER = "teacher_cache.json"
FORMAT = 2  # 2: per-block sha256 of the records (format 1 had none)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def record_dtype(k: int) -> np.dtype:
    """One record of a `{split}.bin` file."""
    return np.dtype([("ids", "<i4", (k,)), ("log_probs", "<f4", (k + 1,))])


def default_cache_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / "teacher_cache"


def dataset_fingerprint(data_dir: str | Path, split: str, max_length: int) -> dict:
    """What decides a split's supervised positions: its token files' content and the truncation."""
    prefix = Path(data_dir) / f"{split}_0"
    return {"max_length": max_length, "bin_sha256": file_sha256(f"{prefix}.bin"),
            "idx_sha256": file_sha256(f"{prefix}.idx")}


def teacher_weights_sha256(model_dir: str | Path) -> str:
    """sha256 over the names and contents of a model folder's weight files (config excluded)."""
    files = sorted(p for p in Path(model_dir).iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{model_dir} holds no weight file ({', '.join(WEIGHT_SUFFIXES)})")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def supervised_counts(dataset: TokenDataset) -> np.ndarray:
    """Supervised positions per item, as `collate_sft` labels them: tokens[1:] after the prompt."""
    counts = np.empty(len(dataset), dtype=np.int64)
    for item in range(len(dataset)):
        example = dataset.example(item)
        counts[item] = max(len(example.tokens) - 1 - max(example.prompt_len - 1, 0), 0)
    return counts


def expected_header(*, teacher_path: str | Path, weights_sha256: str, tokenizer, vocab_size: int, k: int,
                    temperature: float, teacher_dtype: str, block_items: int) -> dict:
    """The header fields that do not depend on a split (the tool writes `splits` beside them)."""
    return {"format": FORMAT, "teacher": {"path": str(teacher_path), "weights_sha256": weights_sha256},
            "tokenizer": tokenizer_signature(tokenizer), "vocab_size": vocab_size, "k": min(k, vocab_size),
            "temperature": temperature, "teacher_dtype": teacher_dtype, "block_items": block_items}


def block_items_range(block: int, block_items: int, items: int) -> range:
    """The items of block `block` (the unit of work of tools/cache_teacher.py and of a checksum)."""
    return range(block * block_items, min((block + 1) * block_items, items))


def records_sha256(records: np.ndarray) -> str:
    """sha256 of a contiguous run of records, as their bytes lie in the .bin file."""
    return hashlib.sha256(np.ascontiguousarray(records).view(np.uint8)).hexdigest()


def read_header(cache_dir: str | Path) -> dict:
    path = Path(cache_dir) / HEADER
    if not path.is_file():
        raise ValueError(f"{cache_dir} is not a complete teacher cache: it has no {HEADER} "
                         f"(tools/cache_teacher.py writes it last, when every record is in place)")
    header = json.loads(path.read_text())
    if header.get("format") == 1:
        raise ValueError(f"{path}: format 1 (written before the cache held checksums): its records have no "
                         f"checksums, so damaged bytes would be read as token ids; rebuild it with "
                         f"tools/cache_teacher.py (same flags, plus --overwrite)")
    if header.get("format") != FORMAT:
        raise ValueError(f"{path}: format {header.get('format')!r}, this code reads format {FORMAT}")
    return header


def check_header(cache_dir: str | Path, header: dict, *, weights_sha256: str, tokenizer, vocab_size: int,
                 temperature: float, splits: dict[str, dict]) -> None:
    """Refuse a cache that was not made for this run; the message names every field that differs.
    `splits`: split name → its `dataset_fingerprint` in this run."""
    current = {"teacher weights sha256": weights_sha256, "tokenizer": tokenizer_signature(tokenizer),
               "vocab_size": vocab_size, "temperature (--kd-temperature)": temperature}
    recorded = {"teacher weights sha256": header["teacher"]["weights_sha256"], "tokenizer": header["tokenizer"],
                "vocab_size": header["vocab_size"], "temperature (--kd-temperature)": header["temperature"]}
    for split, fingerprint in splits.items():
        name = f"dataset fingerprint of split {split!r}"
        current[name] = fingerprint
        recorded[name] = header["splits"].get(split, {}).get("dataset", "absent")
    differing = [f"{name}: cache {recorded[name]} vs run {current[name]}" for name in current
                 if recorded[name] != current[name]]
    if differing:
        raise ValueError(f"{Path(cache_dir) / HEADER} was made for another run (teacher {header['teacher']['path']}); "
                         f"it differs in " + "; ".join(differing) + ". Rebuild it with tools/cache_teacher.py")


REBUILD = "rebuild it with tools/cache_teacher.py (--overwrite)"


class TeacherCacheSplit:
    """The memory-mapped records of one split. Refuses files whose size or .idx checksum disagrees
    with the header at open, and a block whose records' checksum disagrees at its first read."""

    def __init__(self, cache_dir: str | Path, split: str, header: dict):
        self.k = header["k"]
        info = header["splits"][split]
        items, positions = info["items"], info["positions"]
        dtype = record_dtype(self.k)
        paths = {"idx": Path(cache_dir) / f"{split}.idx", "bin": Path(cache_dir) / f"{split}.bin"}
        for kind, expected in (("idx", 8 * (items + 1)), ("bin", dtype.itemsize * positions)):
            size = paths[kind].stat().st_size if paths[kind].is_file() else None
            if size != expected:
                raise ValueError(f"{paths[kind]}: {'missing' if size is None else f'{size} bytes'}, but the header "
                                 f"({HEADER}) says {expected} bytes ({items} items, {positions} positions): the "
                                 f"cache is truncated or damaged; {REBUILD}")
        if file_sha256(paths["idx"]) != info["idx_sha256"]:
            raise ValueError(f"{paths['idx']}: sha256 differs from the header ({HEADER}): the file was damaged or "
                             f"changed after it was written; {REBUILD}")
        self.path = paths["bin"]
        self.offsets = np.memmap(paths["idx"], mode="r", dtype="<i8")
        # np.memmap cannot map an empty file; a split without supervised positions has no records.
        self.records = np.memmap(self.path, mode="r", dtype=dtype) if positions else np.zeros(0, dtype)
        self.block_items, self.block_sha256 = header["block_items"], info["block_sha256"]
        self.verified: set[int] = set()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _verify_block(self, block: int) -> None:
        items = block_items_range(block, self.block_items, len(self))
        rows = self.records[int(self.offsets[items.start]):int(self.offsets[items.stop])]
        if records_sha256(rows) != self.block_sha256[block]:
            raise ValueError(f"{self.path}: block {block} (items {items.start}-{items.stop - 1}): sha256 differs "
                             f"from the header ({HEADER}): the file was damaged or changed after it was written; "
                             f"{REBUILD}")
        self.verified.add(block)

    def item(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids [n, k] int32, log_probs [n, k + 1] float32) of item `index`'s supervised positions."""
        block = index // self.block_items
        if block not in self.verified:
            self._verify_block(block)
        rows = self.records[int(self.offsets[index]):int(self.offsets[index + 1])]
        return rows["ids"], rows["log_probs"]


class CachedTeacherDataset:
    """A TokenDataset whose examples carry their teacher records (collate_sft turns them into the
    batch's `teacher_ids` / `teacher_log_probs`); everything else is the wrapped dataset's."""

    def __init__(self, dataset: TokenDataset, cache: TeacherCacheSplit):
        if len(cache) != len(dataset):
            raise ValueError(f"{cache.path} holds {len(cache)} items but {dataset.data_dir}/{dataset.split}_0 "
                             f"has {len(dataset)}")
        self.dataset, self.cache = dataset, cache

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str):
        return getattr(self.dataset, name)

    def example(self, index: int) -> Example:
        example = self.dataset.example(index)
        return Example(example.tokens, example.prompt_len, teacher=self.cache.item(index))


def open_cached_dataset(cache_dir: str | Path, dataset: TokenDataset, header: dict) -> CachedTeacherDataset:
    return CachedTeacherDataset(dataset, TeacherCacheSplit(cache_dir, dataset.split, header))
