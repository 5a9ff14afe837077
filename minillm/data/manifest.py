"""The record a processed data folder keeps of how it was made (`data_manifest.json`), and the
checks training makes against it.

Written by every processing tool into the folder it publishes: the tool, the tokenizer (path,
vocabulary size, sha256 of its token -> id map and EOS), the settings (lengths, dev-num, task,
...), the sha256 of each source file, the items per split and, from tools that count them, what
happened to the rows of each split (`counts`: dropped, duplicated, cut, ...). Training refuses
data whose tokenizer differs from the model's, naming both.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizerBase

from minillm.fileio import atomic_write_json, file_sha256

DATA_MANIFEST = "data_manifest.json"


def tokenizer_signature(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """What makes two tokenizers produce the same ids: the token -> id map and the EOS id."""
    vocab = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    return {"vocab_size": len(tokenizer), "eos_token_id": tokenizer.eos_token_id,
            "vocab_sha256": hashlib.sha256(vocab.encode()).hexdigest()}


def write_data_manifest(folder: str | os.PathLike, *, tool: str, tokenizer: PreTrainedTokenizerBase,
                        tokenizer_path: str | os.PathLike, settings: dict[str, Any],
                        sources: list[str | os.PathLike], splits: dict[str, int],
                        counts: dict[str, dict[str, int]] | None = None) -> None:
    atomic_write_json(Path(folder) / DATA_MANIFEST, {
        "tool": tool,
        "tokenizer": {"path": str(tokenizer_path), **tokenizer_signature(tokenizer)},
        "settings": settings,
        "sources": {str(path): file_sha256(path) for path in sources},
        "splits": splits,
        **({"counts": counts} if counts is not None else {}),
    })


def read_data_manifest(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / DATA_MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def check_data_tokenizer(folder: str | os.PathLike, tokenizer: PreTrainedTokenizerBase,
                         tokenizer_path: str | os.PathLike) -> str | None:
    """Refuse data processed with another tokenizer (ValueError naming both). Returns a warning
    for a folder without a manifest (e.g. processed by MiniLLM's own tools): its token ids are
    then only range-checked against the vocabulary."""
    manifest = read_data_manifest(folder)
    if manifest is None:
        return (f"{folder} has no {DATA_MANIFEST} (processed by another tool?): its tokenizer cannot be checked; "
                f"token ids are only checked to lie within the vocabulary of {tokenizer_path}")
    recorded, current = manifest["tokenizer"], tokenizer_signature(tokenizer)
    if {k: recorded[k] for k in current} != current:
        def describe(signature: dict) -> str:
            return (f"{signature['vocab_size']} tokens, EOS {signature['eos_token_id']}, vocab sha256 "
                    f"{signature['vocab_sha256'][:12]}")

        if Path(recorded["path"]).resolve() == Path(tokenizer_path).resolve():
            problem = (f"the tokenizer folder {tokenizer_path} changed since the data was processed "
                       f"({describe(recorded)}) -> ({describe(current)})")
        else:
            problem = (f"the data was tokenized with {recorded['path']} ({describe(recorded)}) but the model's "
                       f"tokenizer is {tokenizer_path} ({describe(current)})")
        raise ValueError(f"{Path(folder) / DATA_MANIFEST}: {problem}; reprocess the data with the model's tokenizer")
    return None
