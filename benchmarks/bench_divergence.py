"""The chunked KD divergence (minillm/losses.py) with and without its bytes cap, side by side.

  python benchmarks/bench_divergence.py [--vocab 1110 50257 151646] [--rows 16] [--length 224] [--repeats 3]

Per vocabulary: forward and backward of `divergence("forward_kl", ...)` over [rows, length, vocab]
fp32 logits, every position supervised, `--kd-chunk-size`'s default 1024, once with chunks capped
at `losses.CHUNK_BYTES` per tensor (the code as it runs) and once uncapped (the cap lifted, so a
chunk holds 1024 rows whatever the vocabulary), alternated `--repeats` times; the minimum of each,
their ratio, and whether values and gradients are equal bit for bit. `--out F.json` writes them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from minillm import losses  # noqa: E402


def timed(student: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor, cap: int) -> tuple[float, torch.Tensor,
                                                                                               torch.Tensor]:
    """(seconds, value, gradient) of one forward and backward with chunks capped at `cap` bytes."""
    previous, losses.CHUNK_BYTES = losses.CHUNK_BYTES, cap
    try:
        leaf = student.detach().requires_grad_()
        start = time.perf_counter()
        value = losses.divergence("forward_kl", leaf, teacher, mask)
        value.backward()
        return time.perf_counter() - start, value.detach(), leaf.grad
    finally:
        losses.CHUNK_BYTES = previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, nargs="+", default=[1110, 50257, 151646])
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--length", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    generator = torch.Generator().manual_seed(0)
    print(f"{torch.get_num_threads()} thread(s); [{args.rows}, {args.length}, V] fp32 logits, chunk size 1024\n")
    print("| vocabulary | rows per chunk, capped | capped | uncapped | capped / uncapped | same bits |")
    print("|---|---|---|---|---|---|")
    results = {}
    for vocab in args.vocab:
        student, teacher = (2 * torch.randn(args.rows, args.length, vocab, generator=generator) for _ in range(2))
        mask = torch.ones(args.rows, args.length, dtype=torch.bool)
        capped, uncapped, same = [], [], True
        for _ in range(args.repeats):
            seconds, value, grad = timed(student, teacher, mask, losses.CHUNK_BYTES)
            capped.append(seconds)
            seconds, value_uncapped, grad_uncapped = timed(student, teacher, mask, 2 ** 62)
            uncapped.append(seconds)
            same = same and torch.equal(value, value_uncapped) and torch.equal(grad, grad_uncapped)
        rows = losses.chunk_rows(1024, vocab, torch.float32)
        ratio = min(capped) / min(uncapped)
        results[str(vocab)] = {"rows_per_chunk": rows, "capped_s": min(capped), "uncapped_s": min(uncapped),
                               "ratio": ratio, "same_bits": same}
        print(f"| {vocab:,} | {rows} | {min(capped):.2f} s | {min(uncapped):.2f} s | {ratio:.2f} | {same} |",
              flush=True)
    if args.out:
        args.out.write_text(json.dumps({"threads": torch.get_num_threads(), "rows": args.rows, "length": args.length,
                                        "vocab": results}, indent=1) + "\n")
    return 0 if all(item["same_bits"] for item in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
