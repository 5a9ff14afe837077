"""Paying for the teacher once (issue 14): the top-k + tail divergences, the teacher cache
(tools/cache_teacher.py, minillm.data.teacher_cache, --teacher-cache) and MiniLLM's reuse of the
sampler's teacher logits."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel
from world import run_entrypoint

from minillm.data.datasets import TokenDataset, collate_sft
from minillm.data.indexed import IndexedDatasetWriter
from minillm.data.teacher_cache import (
    TeacherCacheSplit,
    check_header,
    dataset_fingerprint,
    open_cached_dataset,
    read_header,
    teacher_weights_sha256,
)
from minillm.eval.generation import SamplingConfig
from minillm.losses import (
    DIVERGENCES,
    IGNORE_INDEX,
    divergence,
    top_k_with_tail,
    topk_divergence,
)
from minillm.modeling import load_tokenizer
from minillm.ppo import losses as ppo
from minillm.ppo.rollouts import (
    DEFAULT_TEACHER_LOGITS_MIB,
    collate_rollouts,
    collect,
    default_teacher_logits_budget,
    describe_teacher_logits_plan,
    teacher_logits_top_k,
)
from minillm.ppo.step import OnPolicyStep
from minillm.train.objectives import KDObjective

# A parameter per divergence that has one, away from its default, so that they are exercised.
PARAMS = {"symmetric_kl": {"sym_lambda": 0.3}, "js_divergence": {"jsd_beta": 0.3},
          "skew_forward_kl": {"skew_alpha": 0.2}, "skew_reverse_kl": {"skew_alpha": 0.2},
          "adaptive_kl": {"akl_mu": 0.6}, "alpha_beta": {"ab_alpha": 0.4, "ab_beta": 0.5}}


def _topk_of_logits(teacher_logits: torch.Tensor, k: int, temperature: float = 1.0):
    ids, log_probs = top_k_with_tail((teacher_logits / temperature).log_softmax(-1).flatten(0, 1), k)
    shape = teacher_logits.shape[:-1]
    return ids.view(*shape, -1), log_probs.view(*shape, -1)


# -- the pure functions ------------------------------------------------------------------------

def test_top_k_with_tail_closed_form():
    p = torch.tensor([[0.5, 0.1, 0.3, 0.1], [0.25, 0.25, 0.25, 0.25]])
    ids, log_probs = top_k_with_tail(p.log(), 2)
    assert ids[0].tolist() == [0, 2]
    assert torch.allclose(log_probs[0].exp(), torch.tensor([0.5, 0.3, 0.2]))
    assert torch.allclose(log_probs[1].exp(), torch.tensor([0.25, 0.25, 0.5]))
    ids, log_probs = top_k_with_tail(p.log(), 9)  # k ≥ V: everything, and an empty tail
    assert ids.shape == (2, 4) and log_probs[:, -1].eq(-math.inf).all()


def test_topk_forward_kl_is_the_kl_between_the_bucketed_distributions():
    """Hand example, V = 4, k = 1: p̂ = (0.5, 0.5), q̂ = (q_0, 1 − q_0)."""
    p, q = torch.tensor([0.5, 0.3, 0.1, 0.1]), torch.tensor([0.2, 0.4, 0.2, 0.2])
    ids, log_probs = top_k_with_tail(p.log()[None], 1)
    value = topk_divergence("forward_kl", q.log()[None, None], ids[None], log_probs[None],
                            torch.ones(1, 1, dtype=torch.bool), vocab_size=4)
    expected = 0.5 * math.log(0.5 / 0.2) + 0.5 * math.log(0.5 / 0.8)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    exact = divergence("forward_kl", q.log()[None, None], p.log()[None, None], torch.ones(1, 1, dtype=torch.bool))
    assert value < exact  # data-processing inequality: grouping the tail can only lose divergence


@pytest.mark.parametrize("name", sorted(DIVERGENCES))
def test_topk_divergence_equals_the_exact_one_when_k_covers_the_vocabulary(name):
    torch.manual_seed(0)
    student = (3 * torch.randn(2, 5, 12)).requires_grad_()  # 2 padding columns beyond vocab_size 10
    teacher = 3 * torch.randn(2, 5, 11)
    mask = torch.rand(2, 5) > 0.3
    settings = dict(reduction="rows", temperature=1.7, chunk_size=3, **PARAMS.get(name, {}))
    exact = divergence(name, student, teacher, mask, vocab_size=10, **settings)
    exact_grad, = torch.autograd.grad(exact.sum(), student)
    ids, log_probs = _topk_of_logits(teacher[..., :10], 10, temperature=1.7)
    cached = topk_divergence(name, student, ids, log_probs, mask, vocab_size=10, **settings)
    cached_grad, = torch.autograd.grad(cached.sum(), student)
    assert torch.allclose(cached, exact, rtol=1e-5, atol=1e-6)
    assert torch.allclose(cached_grad, exact_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["forward_kl", "reverse_kl", "js_divergence", "total_variation"])
def test_topk_f_divergences_lose_value_as_k_shrinks(name):
    torch.manual_seed(1)
    student, teacher = torch.randn(1, 6, 30), 2 * torch.randn(1, 6, 30)
    mask = torch.ones(1, 6, dtype=torch.bool)
    values = [topk_divergence(name, student, *_topk_of_logits(teacher, k), mask, vocab_size=30).item()
              for k in (2, 8, 30)]
    assert values[0] <= values[1] + 1e-6 <= values[2] + 2e-6
    assert values[2] == pytest.approx(divergence(name, student, teacher, mask).item(), rel=1e-5)


# -- the cache ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cache_world(tiny_tokenizer_dir, tmp_path_factory):
    """A random GPT-2 teacher with the tiny tokenizer, a processed folder of prompt/response items
    and a pretraining-style folder, and the tool's cache of the first one."""
    root = tmp_path_factory.mktemp("cache_world")
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    torch.manual_seed(0)
    teacher = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=64,
                                         bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id))
    teacher.save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    rng = np.random.default_rng(0)
    data = root / "data"
    data.mkdir()
    for split, items in (("train", 23), ("valid", 5)):
        with IndexedDatasetWriter(str(data / f"{split}_0"), np.uint16) as writer:
            for _ in range(items):  # prompt, split id (-1), response; some longer than max_length
                writer.add_item([*rng.integers(0, len(tokenizer), rng.integers(1, 8)), -1,
                                 *rng.integers(0, len(tokenizer), rng.integers(1, 30))])
    cache = root / "cache"
    # Two blocks of the three, then the rest: the second run resumes the first.
    common = ["tools/cache_teacher.py", "--teacher-model-path", str(root / "teacher"), "--data-dir", str(data),
              "--out", str(cache), "--max-length", "24", "--top-k", "8", "--kd-temperature", "2.0",
              "--batch-size", "4", "--block-items", "10"]
    first = run_entrypoint([*common, "--stop-after-blocks", "2"])
    assert "stopped with blocks left" in first.stdout and not cache.exists()
    second = run_entrypoint(common)
    assert "resuming" in second.stdout and (cache / "teacher_cache.json").is_file()
    assert not list(root.glob(".cache.partial*"))
    return SimpleNamespace(root=root, data=data, cache=cache, teacher=teacher.eval(), tokenizer=tokenizer)


def test_cache_round_trip_matches_the_live_teacher(cache_world):
    header = read_header(cache_world.cache)
    assert header["k"] == 8 and header["temperature"] == 2.0 and header["splits"]["train"]["items"] == 23
    for split in ("train", "valid"):
        dataset = open_cached_dataset(cache_world.cache, TokenDataset(cache_world.data, split, 24), header)
        batch = collate_sft([dataset.example(i) for i in range(len(dataset))], cache_world.tokenizer.pad_token_id)
        with torch.no_grad():
            logits = cache_world.teacher(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                         position_ids=batch["position_ids"]).logits
        ids, log_probs = _topk_of_logits(logits, 8, temperature=2.0)
        mask = batch["labels"] != IGNORE_INDEX
        assert torch.equal(batch["teacher_ids"][mask], ids[mask])
        assert torch.allclose(batch["teacher_log_probs"][mask], log_probs[mask], atol=1e-5)


def test_cached_kd_objective_equals_the_live_one_when_k_covers_the_vocabulary(cache_world):
    """The objective through collate_sft's cached records: k = V gives the live KD loss."""
    vocab = len(cache_world.tokenizer)
    dataset = TokenDataset(cache_world.data, "train", 24)
    examples = [dataset.example(i) for i in range(6)]
    batch = collate_sft(examples, cache_world.tokenizer.pad_token_id)
    with torch.no_grad():
        logits = cache_world.teacher(**{k: batch[k] for k in ("input_ids", "attention_mask", "position_ids")}).logits
    mask = batch["labels"] != IGNORE_INDEX
    ids, log_probs = _topk_of_logits(logits, vocab, temperature=2.0)
    cached = [type(e)(e.tokens, e.prompt_len, teacher=(ids[r][mask[r]].numpy(), log_probs[r][mask[r]].numpy()))
              for r, e in enumerate(examples)]
    torch.manual_seed(1)
    student = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_layer=1, n_head=1, n_embd=8, n_positions=64,
                                         bos_token_id=None, eos_token_id=None)).eval()  # no dropout
    live = KDObjective(cache_world.teacher, 0.5, "reverse_kl", vocab, temperature=2.0)(student, batch)
    from_cache = KDObjective(None, 0.5, "reverse_kl", vocab, temperature=2.0)(
        student, collate_sft(cached, cache_world.tokenizer.pad_token_id))
    assert torch.allclose(from_cache[0], live[0], rtol=1e-5)


def _check(cache_world, **changes):
    settings = dict(weights_sha256=teacher_weights_sha256(cache_world.root / "teacher"),
                    tokenizer=cache_world.tokenizer, vocab_size=len(cache_world.tokenizer), temperature=2.0,
                    splits={"train": dataset_fingerprint(cache_world.data, "train", 24)})
    check_header(cache_world.cache, read_header(cache_world.cache), **{**settings, **changes})


def test_a_cache_made_for_another_run_is_refused_naming_the_difference(cache_world):
    _check(cache_world)  # the run it was made for
    with pytest.raises(ValueError, match=r"temperature \(--kd-temperature\): cache 2.0 vs run 1.0"):
        _check(cache_world, temperature=1.0)
    with pytest.raises(ValueError, match="dataset fingerprint of split 'train'"):
        _check(cache_world, splits={"train": dataset_fingerprint(cache_world.data, "train", 20)})
    with pytest.raises(ValueError, match="teacher weights sha256"):
        _check(cache_world, weights_sha256="0" * 64)


def test_a_truncated_or_unfinished_cache_is_refused(cache_world, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in cache_world.cache.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    with open(damaged / "train.bin", "r+b") as handle:
        handle.truncate(handle.seek(0, 2) - 10)
    with pytest.raises(ValueError, match=r"train.bin: \d+ bytes, but the header .* truncated"):
        TeacherCacheSplit(damaged, "train", read_header(damaged))
    (damaged / "teacher_cache.json").unlink()
    with pytest.raises(ValueError, match="not a complete teacher cache"):
        read_header(damaged)


def _copy_cache(cache_world, to):
    to.mkdir()
    for path in cache_world.cache.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


def test_overwritten_cache_bytes_are_refused_naming_file_and_block(cache_world, tmp_path):
    """Issue 23: bytes 1000-60000 of a .bin overwritten, size unchanged; only sizes were checked."""
    damaged = _copy_cache(cache_world, tmp_path / "damaged")
    size = (damaged / "train.bin").stat().st_size
    with open(damaged / "train.bin", "r+b") as handle:
        handle.seek(1000)
        handle.write(np.random.default_rng(0).bytes(min(60000, size) - 1000))
    assert (damaged / "train.bin").stat().st_size == size
    dataset = open_cached_dataset(damaged, TokenDataset(cache_world.data, "train", 24), read_header(damaged))
    with pytest.raises(ValueError, match=r"train.bin: block 0 \(items 0-9\): sha256 differs .*rebuild it"):
        for item in range(len(dataset)):
            dataset.example(item)


def test_a_cache_without_block_checksums_is_refused_with_the_way_to_rebuild(cache_world, tmp_path):
    old = _copy_cache(cache_world, tmp_path / "old")
    header = json.loads((old / "teacher_cache.json").read_text())
    for split in header["splits"].values():
        split.pop("block_sha256", None)
    header["format"] = 1
    (old / "teacher_cache.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"format 1 .*no checksums.*tools/cache_teacher.py .*--overwrite"):
        read_header(old)


def test_train_kd_reads_the_cache_and_never_loads_the_teacher(cache_world, tmp_path):
    save = tmp_path / "run"
    run_entrypoint(["train_kd.py", "--model-path", str(cache_world.root / "teacher"),
                    "--teacher-model-path", str(cache_world.root / "teacher"), "--data-dir", str(cache_world.data),
                    "--save", str(save), "--max-length", "24", "--max-prompt-length", "8", "--kd-temperature", "2",
                    "--batch-size", "8", "--micro-batch-size", "4", "--total-steps", "2", "--log-interval", "1",
                    "--eval-gen-num", "-1", "--teacher-cache", str(cache_world.cache),
                    "--deepspeed-config", "configs/deepspeed/zero1_fp32.json"])
    log = (save / "log.txt").read_text()
    assert "top-8 of 400 tokens + tail at temperature 2.0" in log and "(not run)" in log
    assert "parameters" not in log.split("teacher cache")[1]  # load_teacher logs the teacher's size
    records = [json.loads(line) for line in open(save / "log.jsonl")]
    assert all(math.isfinite(r["kd"]) for r in records if "kd" in r)
    assert any("valid_kd" in r for r in records)


# -- MiniLLM: the sampler's teacher logits -----------------------------------------------------

@pytest.mark.parametrize("teacher_mix", [0.2, 0.0])
def test_the_single_step_term_on_kept_teacher_logits_equals_the_recomputed_one(teacher_mix):
    """Same rollouts, same student: the loss and gradient with the sampler's kept teacher logits
    (stepped alongside the student, or from the one scoring pass without mixing) equal those with
    a teacher forward per mini-batch, within float tolerance."""
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=40, n_layer=1, n_head=2, n_embd=16, n_positions=64, bos_token_id=None,
                        eos_token_id=None, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # MiniLLM: no dropout
    student, teacher = GPT2LMHeadModel(config), GPT2LMHeadModel(GPT2Config(**{**config.to_dict(), "n_layer": 2}))
    teacher.eval().requires_grad_(False)
    prompts = [np.random.default_rng(i).integers(0, 39, 3 + i) for i in range(6)]
    rollouts = collect(student, teacher, prompts, config=SamplingConfig(max_new_tokens=7), teacher_mix=teacher_mix,
                       reward_scaling=0.5, reward_clip=100.0, gamma=0.95, length_norm=True, eos_token_id=39,
                       pad_token_id=39, max_prompt_length=16, batch_size=4, generator=torch.Generator().manual_seed(0),
                       device=torch.device("cpu"), sync_ranks=False, teacher_logits_budget_mib=1.0, vocab_size=39)
    assert rollouts.kept_teacher["teacher_logits"].shape == (6, 7, 39)
    method = SimpleNamespace(engine=student, teacher=teacher, vocab_size=39,
                             config=SimpleNamespace(clip_eps=0.2, single_step_reg=True))
    results = []
    for kept in (rollouts.kept_teacher, None):
        rollouts.kept_teacher = kept
        batch = collate_rollouts(rollouts, np.array([5, 0, 2]), 39, 16, torch.device("cpu"))
        loss, parts = OnPolicyStep._policy_terms(method, batch, torch.full((3,), 0.1))
        grad, = torch.autograd.grad(loss, student.transformer.wte.weight)
        results.append((parts["reg_loss"], loss.detach(), grad))
    for kept_value, recomputed in zip(*results):
        assert torch.allclose(kept_value, recomputed, rtol=1e-5, atol=1e-7)


def test_by_default_the_logits_are_kept_only_when_the_full_vocabulary_fits():
    # 256 rollouts × 256 tokens × 50257 columns: 6.1 GiB in bf16 → a teacher forward; a tenth of it is kept
    assert default_teacher_logits_budget(256, 256, 50257, torch.bfloat16) == 0
    assert default_teacher_logits_budget(32, 256, 50257, torch.bfloat16) == DEFAULT_TEACHER_LOGITS_MIB
    assert teacher_logits_top_k(DEFAULT_TEACHER_LOGITS_MIB, 32, 256, 50257, torch.bfloat16) == 50257  # never top-k
    assert "a teacher forward per mini-batch" in describe_teacher_logits_plan(0, 256, 256, 50257, torch.bfloat16)


def test_the_budget_decides_between_full_logits_and_top_k():
    # 4 rollouts × 8 tokens × 1000 columns × 4 bytes = 0.12 MiB
    assert teacher_logits_top_k(1.0, 4, 8, 1000, torch.float32) == 1000
    assert teacher_logits_top_k(0.01, 4, 8, 1000, torch.float32) == (0.01 * 2 ** 20 / 32 - 4) // 8
    with pytest.raises(ValueError, match="--teacher-logits-budget .* cannot hold even the top-1"):
        teacher_logits_top_k(1e-6, 4, 8, 1000, torch.float32)


def test_the_top_k_single_step_term_is_exact_at_full_k_and_below_it_otherwise():
    torch.manual_seed(2)
    student, teacher = torch.randn(2, 4, 20), 2 * torch.randn(2, 4, 20)
    mask = torch.ones(2, 4)
    exact = ppo.single_step_regulariser(student, teacher, mask, 20)
    assert ppo.single_step_regulariser_topk(student, *_topk_of_logits(teacher, 20), mask, 20) == pytest.approx(
        exact.item(), rel=1e-5)
    assert ppo.single_step_regulariser_topk(student, *_topk_of_logits(teacher, 4), mask, 20) < exact
