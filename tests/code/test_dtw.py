"""capmix.detectors.capmix.dtw must reproduce tslearn.metrics.dtw exactly (METHOD.md §3).

tslearn is the reference implementation the design names; these tests pin our
batched numba kernel to it (with and without a Sakoe–Chiba band, equal and
unequal lengths, uni- and multivariate) and check the input handling that the
label-revision step relies on (float32, strided views, clear errors).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from capmix.detectors.capmix import dtw as dtw_module
from capmix.detectors.capmix.dtw import dtw_to_reference, warmup

tslearn_metrics = pytest.importorskip("tslearn.metrics")

TOL = 1e-9
SEEDS = (0, 1, 2)
LENGTHS = (8, 33, 64)
CHANNELS = (1, 3, 7)
# Fewer windows than one lane group: the padded partial-group path always runs
# (test_partial_lane_groups straddles the lane width explicitly).
N_WINDOWS = 11


def _tslearn_dtw(windows: np.ndarray, reference: np.ndarray, band: int | None) -> np.ndarray:
    kwargs: dict[str, object] = {"be": "numpy"}
    if band is not None:
        kwargs |= {"global_constraint": "sakoe_chiba", "sakoe_chiba_radius": band}
    return np.array([tslearn_metrics.dtw(w, reference, **kwargs) for w in windows])


@pytest.mark.parametrize(
    ("seed", "length", "channels"), list(itertools.product(SEEDS, LENGTHS, CHANNELS))
)
@pytest.mark.parametrize("band", [None, 0, 3])
def test_matches_tslearn_equal_length(
    seed: int, length: int, channels: int, band: int | None
) -> None:
    rng = np.random.default_rng(seed)
    windows = rng.standard_normal((N_WINDOWS, length, channels))
    reference = rng.standard_normal((length, channels))
    ours = dtw_to_reference(windows, reference, band=band)
    assert ours.shape == (N_WINDOWS,)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, _tslearn_dtw(windows, reference, band), rtol=0, atol=TOL)


@pytest.mark.parametrize(
    ("w1", "w2"), [(8, 33), (33, 8), (64, 33), (33, 64), (7, 8), (1, 5), (5, 1)]
)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("band", [None, 0, 2])
def test_matches_tslearn_unequal_length(w1: int, w2: int, channels: int, band: int | None) -> None:
    rng = np.random.default_rng(w1 * 1000 + w2 * 10 + channels)
    windows = rng.standard_normal((N_WINDOWS, w1, channels))
    reference = rng.standard_normal((w2, channels))
    ours = dtw_to_reference(windows, reference, band=band)
    np.testing.assert_allclose(ours, _tslearn_dtw(windows, reference, band), rtol=0, atol=TOL)


def test_univariate_shapes_match_tslearn_and_3d() -> None:
    rng = np.random.default_rng(3)
    windows = rng.standard_normal((N_WINDOWS, 33))
    reference = rng.standard_normal(40)
    ours = dtw_to_reference(windows, reference)
    np.testing.assert_allclose(ours, _tslearn_dtw(windows, reference, None), rtol=0, atol=TOL)
    np.testing.assert_array_equal(ours, dtw_to_reference(windows[..., None], reference[:, None]))


@pytest.mark.parametrize("offset", [-1, 0, 1])
@pytest.mark.parametrize("groups", [1, 2])
def test_partial_lane_groups(groups: int, offset: int) -> None:
    n_windows = groups * dtw_module._LANES + offset
    rng = np.random.default_rng(n_windows)
    windows = rng.standard_normal((n_windows, 12, 2))
    reference = rng.standard_normal((9, 2))
    ours = dtw_to_reference(windows, reference, band=1)
    np.testing.assert_allclose(ours, _tslearn_dtw(windows, reference, 1), rtol=0, atol=TOL)


@pytest.mark.parametrize("channels", CHANNELS)
def test_identity_is_zero(channels: int) -> None:
    rng = np.random.default_rng(4)
    windows = rng.standard_normal((N_WINDOWS, 33, channels))
    for i, window in enumerate(windows):
        assert dtw_to_reference(windows, window)[i] == 0.0


@pytest.mark.parametrize("band", [None, 2])
def test_symmetric_for_equal_length(band: int | None) -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((6, 33, 3))
    b = rng.standard_normal((6, 33, 3))
    ab = np.array([dtw_to_reference(a[i : i + 1], b[i], band=band)[0] for i in range(len(a))])
    ba = np.array([dtw_to_reference(b[i : i + 1], a[i], band=band)[0] for i in range(len(a))])
    np.testing.assert_allclose(ab, ba, rtol=0, atol=TOL)


def test_band_zero_is_euclidean_for_equal_length() -> None:
    """Radius 0 allows only the diagonal: DTW collapses to the Euclidean norm."""
    rng = np.random.default_rng(6)
    windows = rng.standard_normal((N_WINDOWS, 20, 3))
    reference = rng.standard_normal((20, 3))
    expected = np.sqrt(((windows - reference) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(dtw_to_reference(windows, reference, band=0), expected, atol=TOL)


def test_float32_input() -> None:
    rng = np.random.default_rng(7)
    windows = rng.standard_normal((N_WINDOWS, 33, 3)).astype(np.float32)
    reference = rng.standard_normal((33, 3)).astype(np.float32)
    ours = dtw_to_reference(windows, reference)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, _tslearn_dtw(windows, reference, None), rtol=0, atol=TOL)
    np.testing.assert_array_equal(
        ours, dtw_to_reference(windows.astype(np.float64), reference.astype(np.float64))
    )


@pytest.mark.parametrize("chunk_bytes", [None, 1])
def test_strided_sliding_window_view(
    chunk_bytes: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overlapping strided views are accepted (converted chunk by chunk, never in full)."""
    if chunk_bytes is not None:  # force several conversion chunks
        monkeypatch.setattr(dtw_module, "_CONVERT_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(8)
    window = 16
    series = rng.standard_normal((90, 2))
    view = np.lib.stride_tricks.sliding_window_view(series, window, axis=0)  # (N, C, W)
    view = view.transpose(0, 2, 1)  # (N, W, C), non-contiguous
    assert not view.flags.c_contiguous
    reference = rng.standard_normal((window, 2))
    ours = dtw_to_reference(view, reference, band=3)
    contiguous = np.ascontiguousarray(view)
    np.testing.assert_array_equal(ours, dtw_to_reference(contiguous, reference, band=3))
    np.testing.assert_allclose(ours, _tslearn_dtw(view, reference, 3), rtol=0, atol=TOL)

    univariate = np.lib.stride_tricks.sliding_window_view(series[:, 0], window)[::3]
    np.testing.assert_allclose(
        dtw_to_reference(univariate, reference[:, 0]),
        _tslearn_dtw(univariate, reference[:, 0], None),
        rtol=0,
        atol=TOL,
    )


def test_empty_batch() -> None:
    out = dtw_to_reference(np.empty((0, 8, 2)), np.zeros((8, 2)))
    assert out.shape == (0,)
    assert out.dtype == np.float64


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_windows_rejected(bad: float) -> None:
    windows = np.zeros((3, 8, 2))
    windows[1, 4, 1] = bad
    with pytest.raises(ValueError, match="windows contains non-finite"):
        dtw_to_reference(windows, np.zeros((8, 2)))


def test_non_finite_counted_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dtw_module, "_CONVERT_CHUNK_BYTES", 1)  # one lane group per chunk
    windows = np.zeros((3 * dtw_module._LANES, 8, 2))
    windows[3, 0, 0] = np.inf
    windows[-1, 7, 1] = np.nan
    with pytest.raises(ValueError, match=r"windows contains non-finite values \(1 NaN, 1 inf\)"):
        dtw_to_reference(windows, np.zeros((8, 2)))


def test_non_finite_reference_rejected() -> None:
    reference = np.zeros(8)
    reference[0] = np.nan
    with pytest.raises(ValueError, match=r"reference contains non-finite values \(1 NaN"):
        dtw_to_reference(np.zeros((3, 8)), reference)


def test_channel_mismatch_rejected() -> None:
    expected = r"channel mismatch: windows have 3 channel\(s\).*reference has 2"
    with pytest.raises(ValueError, match=expected):
        dtw_to_reference(np.zeros((4, 8, 3)), np.zeros((8, 2)))
    with pytest.raises(ValueError, match="channel mismatch"):
        dtw_to_reference(np.zeros((4, 8)), np.zeros((8, 2)))


@pytest.mark.parametrize(
    ("windows", "reference", "exc", "match"),
    [
        (np.zeros(8), np.zeros(8), ValueError, "windows must have 2"),
        (np.zeros((2, 8, 1, 1)), np.zeros((8, 1)), ValueError, "windows must have 2"),
        (np.zeros((2, 8, 1)), np.zeros((8, 1, 1)), ValueError, "reference must have 1"),
        (np.zeros((2, 8, 1)), np.zeros((0, 1)), ValueError, "non-empty"),
        (np.zeros((2, 8), dtype=complex), np.zeros(8), TypeError, "real numeric"),
    ],
)
def test_bad_shapes_rejected(
    windows: np.ndarray, reference: np.ndarray, exc: type[Exception], match: str
) -> None:
    with pytest.raises(exc, match=match):
        dtw_to_reference(windows, reference)


@pytest.mark.parametrize(("band", "exc"), [(-1, ValueError), (1.5, TypeError), (True, TypeError)])
def test_bad_band_rejected(band: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match="band"):
        dtw_to_reference(np.zeros((2, 8)), np.zeros(8), band=band)  # type: ignore[arg-type]


def test_warmup_runs() -> None:
    warmup()


def test_single_compiled_signature() -> None:
    """Every input flavour funnels into one kernel signature: one compile, one cache entry."""
    rng = np.random.default_rng(9)
    windows = rng.standard_normal((40, 16, 2))
    reference = rng.standard_normal((16, 2))
    expected = dtw_to_reference(windows, reference)
    read_only = windows.copy()
    read_only.setflags(write=False)
    reference_ro = reference.copy()
    reference_ro.setflags(write=False)
    for flavour in (read_only, windows.astype(">f8"), np.asfortranarray(windows)):
        np.testing.assert_array_equal(dtw_to_reference(flavour, reference_ro), expected)
    dtw_to_reference(windows.astype(np.float32), reference.astype(np.float32))
    dtw_to_reference(np.arange(32).reshape(2, 16), np.arange(16), band=2)
    assert len(dtw_module._dtw_batch_kernel.signatures) == 1
