"""How far a top-k + tail teacher (a teacher cache, or MiniLLM's budget-limited kept logits) is from
the live teacher: per k and divergence, the token-mean divergence and the cosine between the
student-logit gradients, over a processed split.

  python benchmarks/topk_error.py --teacher T --student S --data-dir PROCESSED [--ks 8 32 64 256 0]

k = 0 means the whole vocabulary (exact up to summation order). The relative error is
|D_topk − D_live| / D_live of the token means; the gradient cosine is taken over all supervised
positions at once (the gradient of the token-mean divergence w.r.t. the student's logits).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: measure this checkout's `minillm`
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402

from minillm.data.datasets import TokenDataset, collate_sft  # noqa: E402
from minillm.losses import IGNORE_INDEX, divergence, top_k_with_tail, topk_divergence  # noqa: E402
from minillm.modeling import check_same_tokenizer, load_model, load_tokenizer  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="teacher model folder")
    parser.add_argument("--student", required=True, help="student model folder (its logits are compared)")
    parser.add_argument("--data-dir", required=True, help="processed folder")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--items", type=int, default=256, help="first N items of the split")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 32, 64, 256, 0], help="0 = the whole vocabulary")
    parser.add_argument("--divergences", nargs="+", default=["forward_kl", "reverse_kl", "js_divergence"])
    parser.add_argument("--out", type=Path, help="JSON with every figure")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    tokenizer = load_tokenizer(args.teacher)
    vocab = check_same_tokenizer(load_tokenizer(args.student), tokenizer)
    teacher, student = load_model(args.teacher).eval(), load_model(args.student).eval()
    dataset = TokenDataset(args.data_dir, args.split, args.max_length)
    ks = [k if k > 0 else vocab for k in args.ks]
    # Per divergence: the live token sum, and per k: the top-k token sum, ⟨g_k, g⟩, |g_k|², |g|².
    sums = {name: {"live": 0.0, "live_sq": 0.0, **{k: [0.0, 0.0, 0.0] for k in ks}} for name in args.divergences}
    tail_mass = {k: 0.0 for k in ks}
    tokens = 0
    for start in range(0, min(args.items, len(dataset)), args.batch_size):
        batch = collate_sft([dataset.example(i) for i in range(start, min(start + args.batch_size, args.items,
                                                                          len(dataset)))], tokenizer.pad_token_id)
        inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "position_ids")}
        with torch.no_grad():
            teacher_logits, student_logits = teacher(**inputs).logits, student(**inputs).logits
        mask = batch["labels"] != IGNORE_INDEX
        tokens += int(mask.sum())
        log_p = (teacher_logits[..., :vocab] / args.temperature).log_softmax(-1)
        cached = {k: top_k_with_tail(log_p.flatten(0, 1), k) for k in ks}
        for k, (_, log_probs) in cached.items():
            tail_mass[k] += float(log_probs[:, -1].exp().view(mask.shape)[mask].sum())
        for name in args.divergences:
            logits = student_logits.clone().requires_grad_()
            live = divergence(name, logits, teacher_logits, mask, reduction="sum", temperature=args.temperature,
                              vocab_size=vocab)
            live_grad, = torch.autograd.grad(live, logits)
            sums[name]["live"] += float(live.detach())
            sums[name]["live_sq"] += float(live_grad.square().sum())
            for k, (ids, log_probs) in cached.items():
                logits = student_logits.clone().requires_grad_()
                value = topk_divergence(name, logits, ids.view(*mask.shape, -1), log_probs.view(*mask.shape, -1),
                                        mask, vocab_size=vocab, reduction="sum", temperature=args.temperature)
                grad, = torch.autograd.grad(value, logits)
                sums[name][k][0] += float(value.detach())
                sums[name][k][1] += float((grad * live_grad).sum())
                sums[name][k][2] += float(grad.square().sum())
    rows = []
    for name, per_k in sums.items():
        live = per_k["live"] / tokens
        for k in ks:
            value, dot, norm_sq = per_k[k]
            rows.append({"divergence": name, "k": k, "live": live, "topk": value / tokens,
                         "relative_error": abs(value / tokens - live) / live if live else 0.0,
                         "grad_cosine": dot / max((norm_sq * per_k["live_sq"]) ** 0.5, 1e-30),
                         "teacher_tail_mass": tail_mass[k] / tokens})
    return {"teacher": args.teacher, "student": args.student, "data": f"{args.data_dir} ({args.split})",
            "vocab_size": vocab, "tokens": tokens, "temperature": args.temperature, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = measure(args)
    print(f"teacher {report['teacher']}, student {report['student']}, {report['tokens']} supervised tokens of "
          f"{report['data']}, V = {report['vocab_size']}")
    print("| divergence | k | teacher tail mass | live D | top-k D | relative error | gradient cosine |")
    print("|---|---|---|---|---|---|---|")
    for row in report["rows"]:
        k = "V" if row["k"] == report["vocab_size"] else row["k"]
        print(f"| {row['divergence']} | {k} | {row['teacher_tail_mass']:.2e} | {row['live']:.4f} | {row['topk']:.4f} "
              f"| {row['relative_error']:.2e} | {row['grad_cosine']:.6f} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
