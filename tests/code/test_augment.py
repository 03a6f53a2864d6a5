"""CutAddPaste properties, checked against a readable per-window oracle replaying the same plan."""

import numpy as np
import pytest

from capmix.detectors.capmix.augment import apply_plan, cut_add_paste, draw_plan


def oracle(windows: np.ndarray, plan) -> np.ndarray:
    """The method as METHOD.md section 2 states it, one window at a time."""
    out = []
    for m in range(plan.dest.shape[0]):
        x = windows[plan.dest[m]].copy()
        r, a, b = plan.length[m], plan.cut[m], plan.paste[m]
        patch = windows[plan.donor[m], a : a + r, :].copy()
        for c in range(x.shape[1]):
            patch[:, c] += plan.slope[m, c] * np.arange(r)
        x[b : b + r, :] = patch
        out.append(x)
    return np.stack(out)


def _windows(n=200, w=32, c=1, seed=0):
    return np.random.default_rng(seed).standard_normal((n, w, c)).astype(np.float32)


@pytest.mark.parametrize("c,dims", [(1, None), (4, None), (6, 3), (5, 2)])
def test_vectorised_equals_oracle(c, dims):
    win = _windows(c=c)
    plan = draw_plan(np.random.default_rng(1), len(win), win.shape[1], c, rate=0.7, min_patch=5, rho=0.5, dims=dims)
    np.testing.assert_allclose(apply_plan(win, plan), oracle(win, plan), rtol=0, atol=1e-6)


def test_patch_length_bounds_and_rate():
    win = _windows(n=500, w=64)
    plan = draw_plan(np.random.default_rng(2), 500, 64, 1, rate=0.6, min_patch=12, rho=1.0, dims=None)
    assert plan.dest.shape[0] == 300
    assert len(np.unique(plan.dest)) == 300
    assert plan.length.min() >= 12 and plan.length.max() <= 63
    assert (plan.cut + plan.length <= 64).all() and (plan.paste + plan.length <= 64).all()


def test_only_paste_region_changes_and_donor_untouched():
    win = _windows(n=100, w=48, c=3)
    before = win.copy()
    out, plan = cut_add_paste(win, np.random.default_rng(3), rate=1.0, min_patch=6, rho=0.3, dims=None)
    np.testing.assert_array_equal(win, before)  # the reference code's view bug would break this
    for m in range(len(out)):
        outside = np.ones(48, bool)
        outside[plan.paste[m] : plan.paste[m] + plan.length[m]] = False
        np.testing.assert_array_equal(out[m][outside], win[plan.dest[m]][outside])


def test_trend_channel_count_in_bounds():
    c, e = 8, 4
    plan = draw_plan(np.random.default_rng(4), 2000, 32, c, rate=1.0, min_patch=4, rho=1.0, dims=e)
    k = (plan.slope != 0).sum(axis=1)
    assert k.min() >= 1 and k.max() <= e - 1
    assert set(np.unique(k)) == set(range(1, e))


def test_univariate_always_trended():
    plan = draw_plan(np.random.default_rng(5), 300, 32, 1, rate=1.0, min_patch=4, rho=1.0, dims=None)
    assert (plan.slope != 0).all()
    assert (np.abs(plan.slope) <= 1.0).all()


def test_same_seed_same_injection():
    win = _windows()
    a, _ = cut_add_paste(win, np.random.default_rng(9), rate=0.5, min_patch=4, rho=0.2, dims=None)
    b, _ = cut_add_paste(win, np.random.default_rng(9), rate=0.5, min_patch=4, rho=0.2, dims=None)
    np.testing.assert_array_equal(a, b)
