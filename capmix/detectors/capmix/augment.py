"""CutAddPaste anomaly injection, vectorised over windows (METHOD.md section 2).

Random draws and their application are split: :func:`draw_plan` makes every random
choice up front (so a readable per-window oracle in the tests can replay them), and
:func:`apply_plan` builds all injected windows with a few array operations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InjectionPlan:
    """All random choices for ``M`` injected windows (arrays of length M unless noted)."""

    dest: np.ndarray  #: index of the destination window X_i
    donor: np.ndarray  #: index of the donor window X_j
    length: np.ndarray  #: patch length r
    cut: np.ndarray  #: cut start a in the donor
    paste: np.ndarray  #: paste start b in the destination
    slope: np.ndarray  #: (M, C) trend slope per channel, 0 on channels without a trend


def draw_plan(
    rng: np.random.Generator,
    n_windows: int,
    window: int,
    n_channels: int,
    *,
    rate: float,
    min_patch: int,
    rho: float,
    dims: int | None,
) -> InjectionPlan:
    """Draw every random choice of CutAddPaste for ``round(rate * n_windows)`` destinations.

    ``dims`` is the exclusive upper bound ``e`` of the number of trended channels
    (``k ~ randint(1, e)``, capped at C); ``None`` allows 1..C. Univariate data always
    trends its one channel.
    """
    m = int(round(rate * n_windows))
    dest = np.sort(rng.choice(n_windows, size=m, replace=False)) if m else np.zeros(0, np.int64)
    donor = rng.integers(0, n_windows, size=m)
    # r = max(zeta, floor(U*W)), at most W-1 so that cut/paste positions exist
    length = np.clip(np.floor(rng.random(m) * window).astype(np.int64), min_patch, window - 1)
    cut = np.floor(rng.random(m) * (window - length)).astype(np.int64)
    paste = np.floor(rng.random(m) * (window - length)).astype(np.int64)
    sign = rng.choice(np.array([-1.0, 1.0]), size=(m, n_channels))
    slope = sign * rng.random((m, n_channels)) * rho
    if n_channels > 1:
        upper = n_channels + 1 if dims is None else max(2, min(dims, n_channels + 1))
        count = rng.integers(1, upper, size=m)
        # rank of each channel in a random order; the first `count` ranks get a trend
        rank = rng.random((m, n_channels)).argsort(axis=1).argsort(axis=1)
        slope = np.where(rank < count[:, None], slope, 0.0)
    return InjectionPlan(dest, donor, length, cut, paste, slope)


def apply_plan(windows: np.ndarray, plan: InjectionPlan) -> np.ndarray:
    """Build the injected windows ``(M, W, C)``; ``windows`` (real, standardised) is not modified.

    Each output is a copy of its destination window whose ``[b, b+r)`` points are replaced
    by the donor's ``[a, a+r)`` points (all channels) plus ``slope * (0..r-1)``.
    """
    m = plan.dest.shape[0]
    w = windows.shape[1]
    t = np.arange(w)
    offset = t[None, :] - plan.paste[:, None]  # position inside the patch
    inside = (offset >= 0) & (offset < plan.length[:, None])
    src = np.clip(plan.cut[:, None] + offset, 0, w - 1)
    patch = windows[plan.donor[:, None], src]  # (M, W, C), a gathered copy
    patch += plan.slope[:, None, :] * np.where(inside, offset, 0)[:, :, None]
    out = np.array(windows[plan.dest], copy=True)
    if m:
        np.copyto(out, patch, where=inside[:, :, None])
    return out


def cut_add_paste(
    windows: np.ndarray,
    rng: np.random.Generator,
    *,
    rate: float,
    min_patch: int,
    rho: float,
    dims: int | None,
) -> tuple[np.ndarray, InjectionPlan]:
    """Inject CutAddPaste anomalies into a copy of a fraction ``rate`` of ``windows``."""
    n, w, c = windows.shape
    plan = draw_plan(rng, n, w, c, rate=rate, min_patch=min_patch, rho=rho, dims=dims)
    return apply_plan(windows, plan), plan
