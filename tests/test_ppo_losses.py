"""Tests for minillm.ppo.losses: hand-computed examples and naive reference implementations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from minillm.ppo import losses
from minillm.ppo.rollouts import Rollouts, scored_logprobs, whiten_minibatch


def _prefix_mask(lengths: list[int], T: int) -> torch.Tensor:
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).float()


def test_rewards_scale_clip_and_mask() -> None:
    teacher = torch.tensor([[-1.0, -300.0, -math.inf, 0.0]])
    old = torch.tensor([[-2.0, -0.5, -1.0, float("nan")]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    r = losses.rewards(teacher, old, mask, scaling=0.5, clip=100.0)
    assert torch.equal(r, torch.tensor([[2.0, -100.0, -100.0, 0.0]]))
    assert torch.equal(losses.rewards(teacher, old, mask, scaling=2.0, clip=1.0),
                       torch.tensor([[0.5, -1.0, -1.0, 0.0]]))


def test_discounted_returns_hand_example() -> None:
    r = torch.tensor([[1.0, 2.0, 4.0, 100.0], [8.0, 0.0, -4.0, 2.0]])
    mask = _prefix_mask([3, 4], 4)
    # Row 0: R2 = 4, R1 = 2 + .5·4 = 4, R0 = 1 + .5·2 + .25·4 = 3; the masked 100 never counts.
    # Row 1: R3 = 2, R2 = -4 + .5·2 = -3, R1 = 0 + .5·(-4) + .25·2 = -1.5, R0 = 8 - 1 + .25 = 7.25.
    plain = losses.discounted_returns(r, mask, gamma=0.5, length_norm=False)
    assert torch.equal(plain, torch.tensor([[3.0, 4.0, 4.0, 0.0], [7.25, -1.5, -3.0, 2.0]]))
    # Remaining tokens: row 0 → 3, 2, 1; row 1 → 4, 3, 2, 1.
    normed = losses.discounted_returns(r, mask, gamma=0.5, length_norm=True)
    assert torch.equal(normed, torch.tensor([[1.0, 2.0, 4.0, 0.0], [1.8125, -0.5, -1.5, 2.0]]))


@pytest.mark.parametrize("length_norm", [False, True])
def test_discounted_returns_matches_double_loop(length_norm: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    B, T, gamma = 5, 9, 0.95
    r = torch.randn(B, T, generator=gen, dtype=torch.float64)
    lengths = [9, 4, 0, 1, 7]
    mask = _prefix_mask(lengths, T).double()
    expected = torch.zeros(B, T, dtype=torch.float64)
    for b, length in enumerate(lengths):
        for t in range(length):
            expected[b, t] = sum(gamma ** (u - t) * r[b, u] for u in range(t, length))
            if length_norm:
                expected[b, t] /= length - t
    got = losses.discounted_returns(r, mask, gamma=gamma, length_norm=length_norm)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_whiten_zero_mean_unit_variance_over_mask() -> None:
    gen = torch.Generator().manual_seed(1)
    values = 3.0 * torch.randn(4, 6, generator=gen) + 5.0
    mask = _prefix_mask([6, 2, 5, 3], 6)
    values[mask == 0] = float("nan")  # padding never leaks in
    out = losses.whiten(values, mask)
    selected = out[mask.bool()].double()
    assert torch.equal(out[~mask.bool()], torch.zeros(int((mask == 0).sum())))
    assert abs(selected.mean().item()) < 1e-6
    assert abs(selected.square().mean().item() - 1.0) < 1e-5  # biased variance ≈ 1


def test_whiten_split_across_ranks_equals_whole() -> None:
    gen = torch.Generator().manual_seed(2)
    values = torch.randn(6, 5, generator=gen) * 2.0 - 1.0
    mask = _prefix_mask([5, 1, 3, 0, 4, 2], 5)
    halves = [(values[:2], mask[:2]), (values[2:], mask[2:])]  # uneven token counts per rank

    # Record each simulated rank's local statistics, then all-reduce by summing them.
    local_stats: list[torch.Tensor] = []
    for v, m in halves:
        losses.whiten(v, m, all_reduce=lambda t: local_stats.append(t.clone()))
    assert all(s.dtype == torch.float64 and s.shape == (3,) for s in local_stats)
    summed = torch.stack(local_stats).sum(0)
    parts = [losses.whiten(v, m, all_reduce=lambda t: t.copy_(summed)) for v, m in halves]

    whole = losses.whiten(values, mask)
    torch.testing.assert_close(torch.cat(parts), whole, rtol=0, atol=1e-6)
    # Without the all-reduce each half whitens with its own statistics, which differ.
    assert not torch.allclose(losses.whiten(*halves[0]), whole[:2], atol=1e-3)


def test_whiten_minibatch_is_lmops_whitening_over_every_slot() -> None:
    """--whiten reference on a padded mini-batch of collection rows 2 and 0 (row 1 is not in it).
    LMOps' utils.whiten over all 8 slots of the mini-batch, padding zeros included: values
    6 0 | 0 0 and 0 2 0 | 0 → mean 1, biased variance (25 + 7·1) / 8 = 4, so (x − 1) / 2."""
    returns = torch.tensor([[6.0, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0], [0.0, 2.0, 0.0, 0.0]])
    mask = _prefix_mask([2, 4, 3], 4)
    zeros = torch.zeros(3, 4)
    rollouts = Rollouts(prompts=[np.array([1])] * 3, responses=zeros.long(), mask=mask, old_logprobs=zeros,
                        teacher_logprobs=zeros, weights=mask, advantages=returns, streams=torch.zeros(3).long())
    whitened = whiten_minibatch(rollouts, np.array([2, 0]), torch.device("cpu"))
    expected = torch.tensor([[2.5, -0.5, -0.5, -0.5], [9.0, 9.0, 9.0, 9.0], [-0.5, 0.5, -0.5, -0.5]])
    torch.testing.assert_close(whitened.advantages, expected)
    assert torch.equal(rollouts.advantages, returns)  # the collection itself keeps its raw returns
    # Whitening over the real tokens only (--whiten tokens) differs: mean 8/5, not 1.
    assert not torch.allclose(losses.whiten(returns[[2, 0]], mask[[2, 0]]), expected[[2, 0]] * mask[[2, 0]], atol=0.1)


def test_policy_loss_hand_computation_and_gradient() -> None:
    # Target ratios ρ = exp(logprobs − old) · w: 1.5, 0.5, 0.5, 1.5; the last token is padding.
    logprobs = torch.tensor([[math.log(3.0), math.log(0.5), math.log(0.25), 0.0, -math.inf]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, 0.0, 0.0, float("nan")]], requires_grad=True)
    weights = torch.tensor([[0.5, 1.0, 2.0, 1.5, float("inf")]], requires_grad=True)
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 7.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    loss, stats = losses.policy_loss(logprobs, old, weights, advantages, mask, clip_eps=0.2)
    # Per token, max(−Aρ, −A·clip(ρ, .8, 1.2)):
    #   A=+1, ρ=1.5: max(−1.5, −1.2) = −1.2 (clipped)   A=+1, ρ=0.5: max(−0.5, −0.8) = −0.5
    #   A=−1, ρ=0.5: max( 0.5,  0.8) =  0.8 (clipped)   A=−1, ρ=1.5: max( 1.5,  1.2) =  1.5
    torch.testing.assert_close(loss, torch.tensor(-1.2 - 0.5 + 0.8 + 1.5))
    assert stats["clip_fraction"].item() == 2
    torch.testing.assert_close(stats["ratio"], torch.tensor(4.0))
    assert not any(s.requires_grad for s in stats.values())

    loss.backward()
    # d(−Aρ)/d logprobs = −Aρ on unclipped tokens; clipped and padding tokens get 0.
    torch.testing.assert_close(logprobs.grad, torch.tensor([[0.0, -0.5, 0.0, 1.5, 0.0]]))
    assert old.grad is None and weights.grad is None and advantages.grad is None


def test_policy_loss_without_clipping_is_the_plain_policy_gradient() -> None:
    # The same tokens as above with clip_eps=None: Σ −A·ρ over the mask, gradient −A·ρ everywhere.
    logprobs = torch.tensor([[math.log(3.0), math.log(0.5), math.log(0.25), 0.0, -math.inf]], requires_grad=True)
    old = torch.tensor([[0.0, 0.0, 0.0, 0.0, float("nan")]])
    weights = torch.tensor([[0.5, 1.0, 2.0, 1.5, float("inf")]])
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])
    loss, stats = losses.policy_loss(logprobs, old, weights, advantages, mask, clip_eps=None)
    torch.testing.assert_close(loss, torch.tensor(-1.5 - 0.5 + 0.5 + 1.5))
    assert stats["clip_fraction"].item() == 0
    loss.backward()
    torch.testing.assert_close(logprobs.grad, torch.tensor([[-1.5, -0.5, 0.5, 1.5, 0.0]]))


def test_on_policy_distillation_advantage_is_the_per_token_log_ratio() -> None:
    """OPD's settings (reward scaling 1, γ 0, no length normalisation): A_t = log p(y_t) − log q(y_t)."""
    gen = torch.Generator().manual_seed(5)
    teacher, student = -torch.rand(3, 6, generator=gen) * 4, -torch.rand(3, 6, generator=gen) * 4
    mask = torch.tensor([[1.0] * 6, [1.0] * 3 + [0.0] * 3, [1.0] + [0.0] * 5])
    returns = losses.discounted_returns(losses.rewards(teacher, student, mask, 1.0, 100.0), mask, 0.0, False)
    torch.testing.assert_close(returns, (teacher - student) * mask)


def test_importance_weights_exactly_one_without_mixing() -> None:
    gen = torch.Generator().manual_seed(3)
    student = torch.randn(3, 7, generator=gen).log_softmax(-1)
    teacher = torch.randn(3, 7, generator=gen).log_softmax(-1)
    mixed = losses.mixed_logprob(student, teacher, 0.0)
    assert torch.equal(losses.importance_weights(student, mixed), torch.ones(3, 7))


@pytest.mark.parametrize("alpha", [0.2, 0.7, 1.0])
def test_importance_weights_with_mixing(alpha: float) -> None:
    gen = torch.Generator().manual_seed(4)
    student = torch.randn(3, 7, generator=gen, dtype=torch.float64).log_softmax(-1)
    teacher = torch.randn(3, 7, generator=gen, dtype=torch.float64).log_softmax(-1)
    q, p = student.exp(), teacher.exp()
    mixed = losses.mixed_logprob(student, teacher, alpha)
    torch.testing.assert_close(mixed, (alpha * p + (1 - alpha) * q).log())
    torch.testing.assert_close(losses.importance_weights(student, mixed), q / (alpha * p + (1 - alpha) * q))


def test_mixed_logprob_rejects_alpha_outside_unit_interval() -> None:
    with pytest.raises(ValueError):
        losses.mixed_logprob(torch.zeros(1, 1), torch.zeros(1, 1), 1.5)


def test_single_step_regulariser_equals_closed_form() -> None:
    gen = torch.Generator().manual_seed(5)
    B, T, V = 2, 3, 7
    student = torch.randn(B, T, V, generator=gen, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(B, T, V + 2, generator=gen, dtype=torch.float64)  # padded embedding columns
    mask = _prefix_mask([3, 1], T).double()

    got = losses.single_step_regulariser(student, teacher, mask, vocab_size=V)
    (grad,) = torch.autograd.grad(got, student)

    log_q = student.log_softmax(-1)
    log_p = teacher[..., :V].log_softmax(-1)
    per_position = (log_q.exp() * (log_q - log_p)).sum(-1)
    expected = (per_position * mask).sum()
    (expected_grad,) = torch.autograd.grad(expected, student)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_token_weights_mean_and_sum() -> None:
    """"mean": each stream's token mean (w_s / N_s; an empty stream counts one token); "sum":
    Tinker's plain sum over tokens (w_s)."""
    assert losses.token_weights([1.0], [40.0]) == [1.0 / 40]
    assert losses.token_weights([0.3, 0.7], [10.0, 0.0], "mean") == [0.03, 0.7]
    assert losses.token_weights([0.3, 0.7], [10.0, 0.0], "sum") == [0.3, 0.7]
    with pytest.raises(ValueError, match="reduction"):
        losses.token_weights([1.0], [1.0], "token-mean")


@pytest.mark.parametrize("world_size", [1, 2])
def test_prompt_share_repeats_each_drawn_prompt_side_by_side(world_size: int) -> None:
    """--samples-per-prompt 4: a collection of 16 rollouts draws 4 prompts, each sampled 4 times on
    the rank that draws it; with 1 sample per prompt the share is the prompt sampler's, as before."""
    from minillm.data.datasets import GlobalBatchSampler
    from minillm.ppo.step import prompt_share

    sampler = GlobalBatchSampler(num_items=10, global_batch=4, seed=3)  # 16 rollouts / 4 samples per prompt
    shares = [prompt_share(sampler, 2, rank, world_size, 16 // world_size, 4) for rank in range(world_size)]
    assert all(len(share) == 16 // world_size for share in shares)
    for share in shares:
        assert all((group == group[0]).all() for group in share.reshape(-1, 4))
    drawn = np.concatenate(shares)[::4]
    assert sorted(drawn.tolist()) == sorted(sampler.global_indices(2).tolist()) and len(set(drawn.tolist())) == 4
    plain = GlobalBatchSampler(num_items=10, global_batch=16 // 4, seed=3)
    assert np.array_equal(prompt_share(plain, 2, 0, 1, 4, 1), plain.micro_batches(2, 0, 1, 4)[0])


def test_scored_logprobs_are_the_full_log_softmax_at_the_masked_positions_and_zero_elsewhere() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, requires_grad=True)
    tokens = torch.randint(0, 11, (3, 5))
    mask = (torch.arange(5)[None, :] < torch.tensor([[5], [2], [0]])).float()
    picked = scored_logprobs(logits, tokens, mask)
    full = logits.log_softmax(-1).gather(2, tokens[:, :, None]).squeeze(2)
    assert torch.equal(picked, torch.where(mask.bool(), full, 0.0))
    weights = torch.randn(3, 5)
    grad, = torch.autograd.grad((picked * weights).sum(), logits)
    expected, = torch.autograd.grad((torch.where(mask.bool(), full, 0.0) * weights).sum(), logits)
    torch.testing.assert_close(grad, expected)
    assert (grad[2] == 0).all()  # a row with no scored token gets no gradient
