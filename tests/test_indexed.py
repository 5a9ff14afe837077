"""The indexed dataset must match the Megatron/MiniLLM binary layout byte for byte."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from minillm.data.indexed import (
    DTYPE_CODES,
    IndexedDataset,
    IndexedDatasetWriter,
    best_dtype,
    split_id_for,
)

ITEMS = [[10, 11, 12, -1, 13, 14], [7], [65000, 1, 2, 65535, 3]]


def expected_files(items: list[list[int]], dtype: str, code: int, split_id: int) -> tuple[bytes, bytes]:
    """Independent construction of the expected .idx/.bin bytes from the format description."""
    tokens = [[split_id if t == -1 else t for t in item] for item in items]
    itemsize = np.dtype(dtype).itemsize
    data = b"".join(np.asarray(item, dtype=dtype).tobytes() for item in tokens)
    pointers, offset = [], 0
    for item in tokens:
        pointers.append(offset)
        offset += len(item) * itemsize
    index = (
        b"MMIDIDX\x00\x00"
        + struct.pack("<Q", 1)
        + struct.pack("<B", code)
        + struct.pack("<Q", len(tokens))
        + struct.pack("<Q", 1)
        + struct.pack(f"<{len(tokens)}i", *[len(item) for item in tokens])
        + struct.pack(f"<{len(tokens)}q", *pointers)
        + struct.pack("<q", 0)
    )
    return index, data


def write(prefix: Path, items: list[list[int]], dtype) -> None:
    with IndexedDatasetWriter(str(prefix), dtype) as writer:
        for item in items:
            writer.add_item(item)


def test_dtype_helpers() -> None:
    assert best_dtype(50257) == np.uint16
    assert best_dtype(65499) == np.uint16
    assert best_dtype(65500) == np.int32
    assert best_dtype(151646) == np.int32
    assert split_id_for(np.uint16) == 65535
    assert split_id_for(np.int32) == 2**31 - 1
    assert DTYPE_CODES[8] == np.uint16 and DTYPE_CODES[4] == np.int32
    with pytest.raises(ValueError):
        split_id_for(np.float32)


def test_uint16_bytes_match_format(tmp_path: Path) -> None:
    write(tmp_path / "ds", ITEMS, np.uint16)
    expected_index, expected_data = expected_files(ITEMS, "<u2", 8, 65535)
    assert (tmp_path / "ds.idx").read_bytes() == expected_index
    assert (tmp_path / "ds.bin").read_bytes() == expected_data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.bin", "ds.idx"]


def test_round_trip_uint16(tmp_path: Path) -> None:
    write(tmp_path / "ds", ITEMS, np.uint16)
    dataset = IndexedDataset(str(tmp_path / "ds"))
    assert len(dataset) == 3
    assert dataset.dtype == np.uint16 and dataset.split_id == 65535
    assert dataset.sizes.dtype == np.int32 and dataset.sizes.tolist() == [6, 1, 5]
    assert dataset[0].tolist() == [10, 11, 12, 65535, 13, 14]
    assert dataset[1].tolist() == [7]
    assert dataset[-1].tolist() == [65000, 1, 2, 65535, 3]
    assert not dataset[0].flags.owndata  # a view into the memory map, not a copy
    with pytest.raises(IndexError):
        dataset[3]


def test_int32_path(tmp_path: Path) -> None:
    items = [[151643, -1, 70000], [0, 2**31 - 2]]
    write(tmp_path / "ds", items, np.int32)
    expected_index, expected_data = expected_files(items, "<i4", 4, 2**31 - 1)
    assert (tmp_path / "ds.idx").read_bytes() == expected_index
    assert (tmp_path / "ds.bin").read_bytes() == expected_data
    dataset = IndexedDataset(str(tmp_path / "ds"))
    assert dataset.dtype == np.int32 and dataset.split_id == 2**31 - 1
    assert dataset[0].tolist() == [151643, 2**31 - 1, 70000]


def test_numpy_items_and_empty_dataset(tmp_path: Path) -> None:
    with IndexedDatasetWriter(str(tmp_path / "np"), np.uint16) as writer:
        writer.add_item(np.array([1, 2, 3], dtype=np.int64))
    assert IndexedDataset(str(tmp_path / "np"))[0].tolist() == [1, 2, 3]
    write(tmp_path / "empty", [], np.uint16)
    assert (tmp_path / "empty.bin").read_bytes() == b""
    assert len(IndexedDataset(str(tmp_path / "empty"))) == 0


def test_out_of_range_token_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token ids"):
        write(tmp_path / "ds", [[70000]], np.uint16)
    with pytest.raises(ValueError, match="token ids"):
        write(tmp_path / "ds", [[-2]], np.uint16)
    assert list(tmp_path.iterdir()) == []


def test_reader_rejects_bad_magic(tmp_path: Path) -> None:
    write(tmp_path / "ds", ITEMS, np.uint16)
    index = tmp_path / "ds.idx"
    index.write_bytes(b"NOTMAGIC!" + index.read_bytes()[9:])
    with pytest.raises(ValueError, match=r"ds\.idx.*bad magic"):
        IndexedDataset(str(tmp_path / "ds"))


def test_reader_rejects_bad_version_and_dtype(tmp_path: Path) -> None:
    write(tmp_path / "ds", ITEMS, np.uint16)
    index = tmp_path / "ds.idx"
    original = index.read_bytes()
    index.write_bytes(original[:9] + struct.pack("<Q", 2) + original[17:])
    with pytest.raises(ValueError, match=r"ds\.idx.*version 2"):
        IndexedDataset(str(tmp_path / "ds"))
    index.write_bytes(original[:17] + bytes([42]) + original[18:])
    with pytest.raises(ValueError, match=r"ds\.idx.*dtype code 42"):
        IndexedDataset(str(tmp_path / "ds"))


def test_reader_rejects_truncated_files(tmp_path: Path) -> None:
    write(tmp_path / "ds", ITEMS, np.uint16)
    data = tmp_path / "ds.bin"
    data.write_bytes(data.read_bytes()[:-2])
    with pytest.raises(ValueError, match=r"ds\.bin.*truncated"):
        IndexedDataset(str(tmp_path / "ds"))
    write(tmp_path / "ds", ITEMS, np.uint16)
    index = tmp_path / "ds.idx"
    index.write_bytes(index.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"ds\.idx.*size"):
        IndexedDataset(str(tmp_path / "ds"))
    index.write_bytes(index.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"ds\.idx.*truncated header"):
        IndexedDataset(str(tmp_path / "ds"))


def test_writer_leaves_nothing_after_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with IndexedDatasetWriter(str(tmp_path / "ds"), np.uint16) as writer:
            writer.add_item([1, 2, 3])
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_abort_keeps_previous_output(tmp_path: Path) -> None:
    write(tmp_path / "ds", ITEMS, np.uint16)
    before = (tmp_path / "ds.bin").read_bytes(), (tmp_path / "ds.idx").read_bytes()
    writer = IndexedDatasetWriter(str(tmp_path / "ds"), np.uint16)
    writer.add_item([99])
    writer.abort()
    assert ((tmp_path / "ds.bin").read_bytes(), (tmp_path / "ds.idx").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.bin", "ds.idx"]


def test_outputs_get_normal_file_permissions(tmp_path: Path) -> None:
    write(tmp_path / "ds", ITEMS, np.uint16)
    (tmp_path / "plain").write_bytes(b"")
    plain_mode = (tmp_path / "plain").stat().st_mode
    assert (tmp_path / "ds.bin").stat().st_mode == plain_mode
    assert (tmp_path / "ds.idx").stat().st_mode == plain_mode
