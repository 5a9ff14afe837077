"""The marker of a model folder whose weights were drawn at random (tools/make_random_model.py
writes it beside config.json), so a run can tell a teacher that starts from nothing, and can
write no usable chain of thought after a short fine-tune, from a pretrained one. Training never
copies it: a checkpoint trained from such a folder is a new folder without the marker."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from minillm.fileio import atomic_write_json

RANDOM_INIT_FILE = "random_init.json"


def record_random_init(folder: str | Path, **details: Any) -> None:
    """Mark `folder` as random-init; `details` (seed, config, tokenizer) are kept for the reader."""
    atomic_write_json(Path(folder) / RANDOM_INIT_FILE, {"random_init": True, **details})


def is_random_init(folder: str | Path) -> bool:
    """Whether the model folder holds randomly initialised weights (its marker says so)."""
    return (Path(folder) / RANDOM_INIT_FILE).is_file()
