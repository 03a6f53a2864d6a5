"""Anomaly-shift measurement (capmix/evaluation/shift.py): the distances, the embeddings, the report."""

import numpy as np
import pytest
import torch
from scipy.stats import energy_distance as scipy_energy

from capmix.config import DetectorConfig
from capmix.data.canonical import Series
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.evaluation.shift import anomaly_shift, embed, embed_mixed, energy_distance, median_bandwidth, mmd_rbf


def test_energy_distance_equals_scipy_in_1d_with_and_without_weights():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40), rng.normal(0.7, 1.5, 55)
    assert energy_distance(a, b) == pytest.approx(scipy_energy(a, b), rel=1e-10)
    wa, wb = rng.random(40), rng.random(55)
    assert energy_distance(a, b, wa, wb) == pytest.approx(scipy_energy(a, b, wa, wb), rel=1e-10)
    assert energy_distance(a, a) == pytest.approx(0.0, abs=1e-12)


def test_energy_distance_in_several_dimensions_matches_the_definition():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(7, 3)), rng.normal(size=(5, 3)) + 1.0
    d = lambda x, y: np.linalg.norm(x - y)  # noqa: E731
    exy = np.mean([d(x, y) for x in a for y in b])
    exx = np.mean([d(x, y) for x in a for y in a])
    eyy = np.mean([d(x, y) for x in b for y in b])
    assert energy_distance(a, b) == pytest.approx(np.sqrt(2 * exy - exx - eyy), rel=1e-10)


def test_mmd_rbf_is_the_biased_estimate_with_the_median_bandwidth():
    a = np.array([[0.0], [1.0]])
    b = np.array([[3.0]])
    s = median_bandwidth(a, b)  # pooled pairwise distances 1, 2, 3 -> median 2
    assert s == 2.0
    k = lambda x, y: np.exp(-((x - y) ** 2) / (2 * s * s))  # noqa: E731
    kxx = np.mean([k(x, y) for x in (0, 1) for y in (0, 1)])
    expected = kxx + 1.0 - 2 * np.mean([k(x, 3.0) for x in (0, 1)])
    assert mmd_rbf(a, b) == pytest.approx(expected, rel=1e-12)
    assert mmd_rbf(a, a) == pytest.approx(0.0, abs=1e-12)
    # weights: all weight on the first point of a is the same as a one-point sample
    assert mmd_rbf(a, b, 2.0, wa=[1.0, 0.0]) == pytest.approx(mmd_rbf(a[:1], b, 2.0), rel=1e-12)
    with pytest.raises(ValueError, match="weights"):
        mmd_rbf(a, b, wa=[0.0, 0.0])


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    t = np.arange(4000)
    x = (np.sin(2 * np.pi * t / 32) + 0.1 * rng.standard_normal(4000))[:, None]
    labels = np.zeros(4000, np.int8)
    for start in (2600, 3100, 3600):
        x[start : start + 20, 0] += 2.0
        labels[start : start + 20] = 1
    s = Series("toy", x, labels, train_end=2000)
    cfg = DetectorConfig(window=32, stride=8, kernel=4, features=8, max_epochs=2, min_epochs=1, min_patch=6,
                         batch_size=128, device="cpu", gamma=1.5, alpha=0.4)
    return CAPMixDetector(cfg).fit(*s.train), s


def test_embeddings_are_the_features_the_head_sees(trained):
    det, s = trained
    w = np.random.default_rng(0).standard_normal((5, 32, 1)).astype(np.float32)
    f = embed(det.model_, w)
    with torch.inference_mode():
        logits = det.model_.head(torch.from_numpy(f).float())
        direct = det.model_(torch.from_numpy(w))
    assert torch.allclose(logits, direct, atol=1e-5)
    # lam = 1 mixes nothing in; input mixup equals embedding the mixed input
    assert np.allclose(embed_mixed(det.model_, w, w[::-1], np.ones(5), np.array([3] * 5)), f, atol=1e-5)
    lam = np.full(5, 0.3)
    mixed_in = embed(det.model_, 0.3 * w + 0.7 * w[::-1])
    assert np.allclose(embed_mixed(det.model_, w, w[::-1], lam, np.zeros(5, int)), mixed_in, atol=1e-5)
    # hidden mixup at block 3 is the mix of the features themselves
    f_rev = embed(det.model_, w[::-1].copy())
    assert np.allclose(embed_mixed(det.model_, w, w[::-1], lam, np.full(5, 3)), 0.3 * f + 0.7 * f_rev, atol=1e-5)


def test_anomaly_shift_reports_every_distance(trained):
    det, s = trained
    r = anomaly_shift(det, s, keep_features=True)
    for syn in ("cap", "capmix"):
        for ref in ("real", "normal"):
            assert np.isfinite(r[f"energy/{syn}_{ref}"]) and r[f"energy/{syn}_{ref}"] > 0
            assert np.isfinite(r[f"mmd/{syn}_{ref}"])
    assert r["n_real"] > 0 and r["n_normal"] > r["n_real"] and r["n_cap"] > 0 and r["n_capmix"] > 0
    assert r["eq10_energy"] == (r["energy/capmix_real"] < r["energy/cap_real"])
    f = r["features"]
    assert f["cap"].shape[1] == f["real"].shape[1] == f["capmix"].shape[1]
    assert (r["weights"]["capmix"] > 0).all() and (r["weights"]["capmix"] <= 1).all()
    assert anomaly_shift(det, s)["energy/cap_real"] == r["energy/cap_real"]  # seeded
