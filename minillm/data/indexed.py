"""Megatron "MMapIndexedDataset" (version 1) token files, as read and written by MiniLLM.

A dataset is a pair `{prefix}.bin` (all items' tokens concatenated) and `{prefix}.idx`
(header, per-item sizes and byte pointers, document index). Keeping this exact layout lets
data processed here and data processed by MiniLLM's own tools be used interchangeably.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from types import TracebackType

import numpy as np

from minillm.fileio import sibling_temporary_path

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
# magic, uint64 version, uint8 dtype code, uint64 item count, uint64 doc_idx count.
_HEADER = struct.Struct("<9sQBQQ")

DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.int8),
    3: np.dtype(np.int16),
    4: np.dtype(np.int32),
    5: np.dtype(np.int64),
    6: np.dtype(np.float32),
    7: np.dtype(np.float64),
    8: np.dtype(np.uint16),
    9: np.dtype(np.uint32),
}
_CODE_OF_DTYPE = {dtype: code for code, dtype in DTYPE_CODES.items()}


def best_dtype(vocab_size: int) -> np.dtype:
    """Smallest token dtype MiniLLM uses for a vocabulary: uint16 leaves room for the split id."""
    return np.dtype(np.uint16) if vocab_size < 65500 else np.dtype(np.int32)


def split_id_for(dtype: np.dtype | type) -> int:
    """Separator token between prompt and response: the dtype's maximum value."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu":
        raise ValueError(f"token dtype must be an integer type, got {dtype}")
    return int(np.iinfo(dtype).max)


def bin_path(prefix: str) -> str:
    """Path of the token file of a dataset prefix."""
    return f"{prefix}.bin"


def idx_path(prefix: str) -> str:
    """Path of the index file of a dataset prefix."""
    return f"{prefix}.idx"


class IndexedDatasetWriter:
    """Streams items into `{prefix}.bin`/`{prefix}.idx`, publishing both only on success.

    Tokens go to temporary files beside the targets; `finalize()` writes the index and renames
    both into place, while an exception inside the `with` block or `abort()` deletes them, so a
    failed run never leaves partial output. A token value of -1 is written as the split id.
    """

    def __init__(self, prefix: str, dtype: np.dtype | type) -> None:
        self.prefix = prefix
        self.dtype = np.dtype(dtype)
        if self.dtype not in _CODE_OF_DTYPE:
            raise ValueError(f"unsupported dtype {self.dtype}")
        self.split_id = split_id_for(self.dtype)
        self._sizes: list[int] = []
        self._bin_tmp = sibling_temporary_path(bin_path(prefix))
        self._idx_tmp: str | None = None
        self._bin_file = open(self._bin_tmp, "xb")
        self._closed = False

    def add_item(self, tokens: Sequence[int] | np.ndarray) -> None:
        """Append one item; values must lie in [0, split_id], with -1 meaning the split id."""
        if self._closed:
            raise RuntimeError(f"writer for {self.prefix} is already closed")
        values = np.asarray(tokens, dtype=np.int64).reshape(-1)
        values = np.where(values == -1, self.split_id, values)
        if values.size and (values.min() < 0 or values.max() > self.split_id):
            raise ValueError(
                f"token ids must be in [0, {self.split_id}] (or -1) for {self.dtype.name}, "
                f"got range [{values.min()}, {values.max()}]"
            )
        self._bin_file.write(values.astype(self.dtype.newbyteorder("<")).tobytes())
        self._sizes.append(int(values.size))

    def _index_bytes(self) -> bytes:
        sizes = np.asarray(self._sizes, dtype="<i4")
        pointers = np.zeros(len(sizes), dtype="<i8")
        np.cumsum(sizes[:-1], dtype="<i8", out=pointers[1:])
        pointers *= self.dtype.itemsize
        doc_idx = np.zeros(1, dtype="<i8")
        header = _HEADER.pack(MAGIC, VERSION, _CODE_OF_DTYPE[self.dtype], len(sizes), len(doc_idx))
        return header + sizes.tobytes() + pointers.tobytes() + doc_idx.tobytes()

    def finalize(self) -> None:
        """Write the index and move both files into place."""
        if self._closed:
            raise RuntimeError(f"writer for {self.prefix} is already closed")
        try:
            self._bin_file.close()
            self._idx_tmp = sibling_temporary_path(idx_path(self.prefix))
            with open(self._idx_tmp, "xb") as idx_file:
                idx_file.write(self._index_bytes())
            os.replace(self._bin_tmp, bin_path(self.prefix))
            os.replace(self._idx_tmp, idx_path(self.prefix))
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        """Discard everything written so far."""
        self._bin_file.close()
        for path in (self._bin_tmp, self._idx_tmp):
            if path is not None and os.path.exists(path):
                os.remove(path)
        self._closed = True

    def __enter__(self) -> IndexedDatasetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.finalize()


class IndexedDataset:
    """Read-only, memory-mapped view of a `{prefix}.bin`/`{prefix}.idx` pair."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        index_file = idx_path(prefix)
        index_size = os.path.getsize(index_file)
        with open(index_file, "rb") as handle:
            header = handle.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise ValueError(f"{index_file}: truncated header ({len(header)} bytes)")
        magic, version, code, count, doc_count = _HEADER.unpack(header)
        if magic != MAGIC:
            raise ValueError(f"{index_file}: bad magic {magic!r}, expected {MAGIC!r}")
        if version != VERSION:
            raise ValueError(f"{index_file}: unsupported version {version}, expected {VERSION}")
        if code not in DTYPE_CODES:
            raise ValueError(f"{index_file}: unknown dtype code {code}")
        expected_size = _HEADER.size + count * (4 + 8) + doc_count * 8
        if index_size != expected_size:
            raise ValueError(
                f"{index_file}: size {index_size} bytes, expected {expected_size} "
                f"for {count} items and {doc_count} document entries"
            )
        self.dtype = DTYPE_CODES[code]
        index = np.memmap(index_file, mode="r", dtype=np.uint8)
        sizes_end = _HEADER.size + 4 * count
        self.sizes = index[_HEADER.size : sizes_end].view("<i4")
        self.pointers = index[sizes_end : sizes_end + 8 * count].view("<i8")
        self.doc_idx = index[sizes_end + 8 * count :].view("<i8")

        data_file = bin_path(prefix)
        data_size = os.path.getsize(data_file)
        item_ends = self.pointers + self.sizes.astype(np.int64) * self.dtype.itemsize
        needed = int(item_ends.max(initial=0))
        if data_size < needed:
            raise ValueError(
                f"{data_file}: truncated, {data_size} bytes but the index needs {needed}"
            )
        self._items_end = needed
        # np.memmap cannot map an empty file; an empty dataset has no items to view anyway.
        self._data = (
            np.memmap(data_file, mode="r", dtype=np.uint8)
            if data_size
            else np.empty(0, dtype=np.uint8)
        )

    @property
    def split_id(self) -> int:
        """Prompt/response separator of this dataset's token dtype."""
        return split_id_for(self.dtype)

    def __len__(self) -> int:
        return len(self.sizes)

    def first_invalid_token(self, vocab_size: int, block: int = 1 << 22) -> tuple[int, int] | None:
        """(item, value) of the first token that is neither in [0, vocab_size) nor the split id,
        or None. Scans the items' bytes in blocks of `block` tokens, so memory stays bounded."""
        tokens = self._data[: self._items_end].view(self.dtype.newbyteorder("<"))
        for start in range(0, len(tokens), block):
            values = tokens[start : start + block]
            bad = np.flatnonzero(((values >= vocab_size) | (values < 0)) & (values != self.split_id))
            if bad.size:
                position = start + int(bad[0])
                item = int(np.searchsorted(self.pointers, position * self.dtype.itemsize, side="right")) - 1
                return item, int(tokens[position])
        return None

    def __getitem__(self, index: int) -> np.ndarray:
        """Tokens of one item, as a read-only view into the memory map."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items in {self.prefix}")
        start = int(self.pointers[index])
        size = int(self.sizes[index])
        raw = self._data[start : start + size * self.dtype.itemsize]
        return raw.view(self.dtype.newbyteorder("<"))
