import math

import pytest
import torch

from edgevid.flow import GuidedVelocity, interpolate, logit_normal_t, rectified_flow_loss, sample_euler, time_grid


def test_euler_lands_exactly_on_constant_velocity_field():
    # dx/dt = v constant: integrating from t=1 to t=0 gives x(0) = x(1) - v, for any grid.
    x1 = torch.randn(2, 4, 3, 8, 8, dtype=torch.float64)
    v = torch.randn_like(x1)
    for steps in (1, 4, 25):
        for shift in (1.0, 3.0):
            out = sample_euler(lambda x, t: v, x1, time_grid(steps, shift).double())
            torch.testing.assert_close(out, x1 - v, rtol=0, atol=1e-6)


def test_euler_on_the_true_rectified_flow_recovers_data():
    # For a single data point x0, the exact velocity field is (x - x0) / t; Euler follows
    # the straight line and lands on x0 in any number of steps.
    x0 = torch.randn(1, 4, 2, 4, 4, dtype=torch.float64)
    noise = torch.randn_like(x0)
    field = lambda x, t: (x - x0) / t.reshape(-1, 1, 1, 1, 1)
    out = sample_euler(field, noise, time_grid(4).double())
    torch.testing.assert_close(out, x0)


def test_time_grid_endpoints_monotone_and_validation():
    g = time_grid(5, shift=2.0)
    assert g[0] == 1.0 and g[-1] == 0.0 and len(g) == 6
    assert torch.all(g[1:] < g[:-1])
    assert g[1] > 0.8  # shift > 1 moves the grid towards noise (uniform would be 0.8)
    with pytest.raises(ValueError):
        time_grid(0)


def test_interpolation_is_eq1():
    x0, eps = torch.ones(3, 2), torch.zeros(3, 2)
    t = torch.tensor([0.0, 0.25, 1.0])
    torch.testing.assert_close(interpolate(x0, eps, t), torch.tensor([[1.0, 1.0], [0.75, 0.75], [0.0, 0.0]]))


def test_logit_normal_moments():
    g = torch.Generator().manual_seed(0)
    t = logit_normal_t(200_000, mean=0.5, std=0.8, generator=g)
    logit = torch.log(t / (1 - t))
    assert abs(logit.mean().item() - 0.5) < 0.01 and abs(logit.std().item() - 0.8) < 0.01
    assert t.min() > 0 and t.max() < 1


def test_loss_is_zero_for_the_exact_velocity_and_positive_otherwise():
    x0 = torch.randn(4, 4, 3, 8, 8)
    g = torch.Generator().manual_seed(1)
    # Reproduce the loss's own draws to build the exact target: eps - x0.
    g_copy = torch.Generator().manual_seed(1)
    t = logit_normal_t(4, generator=g_copy)
    eps = torch.randn(x0.shape, generator=g_copy)
    exact = lambda x, tt: eps - x0
    assert rectified_flow_loss(exact, x0, generator=g).item() < 1e-10
    zero = lambda x, tt: torch.zeros_like(x)
    expected = torch.mean((eps - x0) ** 2).item()
    loss = rectified_flow_loss(zero, x0, generator=torch.Generator().manual_seed(1)).item()
    assert math.isclose(loss, expected, rel_tol=1e-5)
    assert t.shape == (4,)


class _FakeNet(torch.nn.Module):
    """v = mean of the unmasked context tokens' first feature, broadcast: lets CFG be checked by hand."""

    def forward(self, x, t, context, mask):
        m = mask.float().unsqueeze(-1)
        val = (context * m).sum(1)[:, 0] / m.sum(1)[:, 0]  # (B,)
        return val.reshape(-1, 1, 1, 1, 1).expand_as(x)


def test_classifier_free_guidance_combines_branches():
    x = torch.zeros(2, 1, 1, 2, 2)
    cond = torch.tensor([[[3.0], [0.0]], [[5.0], [7.0]]])  # (B=2, L=2, D=1)
    cond_mask = torch.tensor([[True, False], [True, True]])
    uncond = torch.tensor([[[1.0]]])  # (1, 1, 1), broadcast over the batch
    v = GuidedVelocity(_FakeNet(), cond, cond_mask, uncond, None, guidance_scale=4.0)(x, torch.tensor(0.5))
    # v = u + g (c - u): sample 0: 1 + 4 (3 - 1) = 9; sample 1: 1 + 4 (6 - 1) = 21
    assert v[0].unique().item() == 9.0 and v[1].unique().item() == 21.0
    plain = GuidedVelocity(_FakeNet(), cond, cond_mask, uncond, None, guidance_scale=1.0)(x, torch.tensor(0.5))
    assert plain[0].unique().item() == 3.0  # g = 1: the conditional branch alone
    # guidance only at t >= 0.6: at t = 0.5 the conditional branch alone, at 0.7 the guided mix
    interval = GuidedVelocity(_FakeNet(), cond, cond_mask, uncond, None, guidance_scale=4.0, guidance_min_t=0.6)
    assert interval(x, torch.tensor(0.5))[1].unique().item() == 6.0
    assert interval(x, torch.tensor(0.7))[1].unique().item() == 21.0


def test_sample_euler_with_prefix_keeps_the_prefix_and_is_exact_on_straight_paths():
    from edgevid.flow.sample import sample_euler_with_prefix

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 3, 6, 4, 4, generator=g), torch.randn(2, 3, 6, 4, 4, generator=g)
    # the exact velocity of the straight path through x0: x_t = (1 - t) x0 + t eps  =>  v = (x_t - x0) / t
    velocity = lambda x, t: (x - x0) / t.view(-1, 1, 1, 1, 1)
    out = sample_euler_with_prefix(velocity, eps, time_grid(4), prefix=x0[:, :, :2])
    torch.testing.assert_close(out, x0)
    wrong_prefix = x0[:, :, :2] + 1.0
    out = sample_euler_with_prefix(velocity, eps, time_grid(4), prefix=wrong_prefix)
    assert torch.equal(out[:, :, :2], wrong_prefix)  # the prefix is returned as given
    with pytest.raises(ValueError, match="prefix"):
        sample_euler_with_prefix(velocity, eps, time_grid(4), prefix=x0)  # nothing left to generate


def test_chunk_plan():
    from edgevid.flow.sample import chunk_plan

    assert chunk_plan(31, 31, 4) == [(0, 31)] and chunk_plan(31, 0, 4) == [(0, 31)]
    assert chunk_plan(61, 31, 4) == [(0, 31), (27, 58), (54, 61)]
    assert chunk_plan(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    for bad in (0, 4):
        with pytest.raises(ValueError, match="overlap"):
            chunk_plan(10, 4, bad)


def test_chunk_plan_with_a_short_first_chunk():
    from edgevid.flow.sample import chunk_plan

    # first <= overlap: the second chunk continues the whole first one, up to the window
    assert chunk_plan(31, 31, 4, first=2) == [(0, 2), (0, 31)]
    assert chunk_plan(13, 0, 4, first=2) == [(0, 2), (0, 13)]  # no window limit
    assert chunk_plan(61, 31, 4, first=2) == [(0, 2), (0, 31), (27, 58), (54, 61)]
    assert chunk_plan(31, 31, 4, first=6) == [(0, 6), (2, 31)]  # first > overlap: the last 4 are the prefix
    # a first chunk as long as the clip or the window is no short first chunk
    assert chunk_plan(13, 0, 4, first=13) == [(0, 13)] and chunk_plan(31, 31, 4, first=31) == [(0, 31)]
    with pytest.raises(ValueError, match="first"):
        chunk_plan(31, 31, 4, first=-1)


def test_prefix_sampling_started_from_the_held_frame():
    """start="hold": the new frames start one step later from the held last known frame, noised
    to that time; one network call fewer; the prefix is kept exactly. With a velocity field that
    points every frame at a target, both starts reach the target (the Euler path is exact)."""
    from edgevid.flow.sample import sample_euler_with_prefix
    from edgevid.flow.schedule import time_grid

    g = torch.Generator().manual_seed(0)
    target = torch.randn(1, 2, 5, 3, 3, generator=g)
    noise = torch.randn(1, 2, 5, 3, 3, generator=g)
    prefix = target[:, :, :2]
    calls = []

    def v(x, t):  # the straight-path velocity to `target` from x at time t: (x - target) / t
        calls.append(float(t[0]))
        return (x - target) / t.view(-1, 1, 1, 1, 1)

    grid = time_grid(4)
    plain = sample_euler_with_prefix(v, noise, grid, prefix)
    assert len(calls) == 4
    calls.clear()
    held = sample_euler_with_prefix(v, noise, grid, prefix, start="hold")
    assert calls == [0.75, 0.5, 0.25]  # the first step (t = 1) is skipped
    torch.testing.assert_close(plain, target)
    torch.testing.assert_close(held, target)
    assert torch.equal(held[:, :, :2], prefix)
    with pytest.raises(ValueError, match="start"):
        sample_euler_with_prefix(v, noise, grid, prefix, start="zeros")
