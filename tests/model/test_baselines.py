"""The library baselines behind one interface: shapes, thresholds, errors, and that they detect."""

from __future__ import annotations

import numpy as np
import pytest

from capmix.config import detector_config, load_params
from capmix.detectors.base import NotFittedError
from capmix.evaluation.metrics import auc_scores
from capmix.detectors.registry import build_detector, detector_names, family

BASELINES = [m for m in detector_names() if family(m) == "baseline"]


def _data(n_channels: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(4000)
    x = np.stack([np.sin(2 * np.pi * t / 40 + c) for c in range(n_channels)], 1)
    x += 0.05 * rng.standard_normal(x.shape)
    y = np.zeros(4000, np.int8)
    # a burst: the sine with a doubled amplitude and an offset (an RBF OC-SVM cannot see a flat
    # line at 0: it sits at the centre of the sine windows, so a flat line would be a wrong test)
    x[3000:3040] = 2 * x[3000:3040] + 1.5
    y[3000:3040] = 1
    return x[:2000], x[2000:], y[2000:]


@pytest.fixture(scope="module")
def cfg():
    return detector_config(load_params("params.yaml"), window=32, stride=8)


@pytest.mark.parametrize("method", BASELINES)
def test_baseline_interface(method, cfg):
    params = load_params("params.yaml")
    xtr, xte, _ = _data(2)
    det = build_detector(method, params, seed=0, window=cfg.window, stride=cfg.stride)
    with pytest.raises(NotFittedError):
        det.decision_function(xte)
    assert det.fit(xtr) is det
    s = det.decision_function(xte)
    assert s.shape == (xte.shape[0],) and np.isfinite(s).all()
    assert np.isfinite(det.threshold_)
    assert set(np.unique(det.predict(xte))) <= {0, 1}
    with pytest.raises(ValueError, match="channels"):
        det.decision_function(xte[:, :1])


@pytest.mark.parametrize("method", ["iforest", "ocsvm", "mp", "deepsvdd"])
def test_baselines_find_a_burst_in_a_sine(method, cfg):
    xtr, xte, yte = _data(1)
    det = build_detector(method, load_params("params.yaml"), seed=0, window=cfg.window, stride=cfg.stride).fit(xtr)
    _, roc = auc_scores(yte, det.decision_function(xte))
    assert roc > 0.8, f"{method} AUC-ROC {roc:.3f}"


def test_random_scorer_is_seeded_and_uninformative(cfg):
    params = load_params("params.yaml")
    xtr, xte, yte = _data(1)
    a = build_detector("random", params, seed=3, window=cfg.window, stride=cfg.stride).fit(xtr).decision_function(xte)
    b = build_detector("random", params, seed=3, window=cfg.window, stride=cfg.stride).fit(xtr).decision_function(xte)
    assert np.array_equal(a, b)
    assert 0.3 < auc_scores(yte, a)[1] < 0.7


def test_zscore_is_the_rms_of_standardised_values(cfg):
    rng = np.random.default_rng(1)
    xtr = rng.normal([0.0, 10.0, 5.0], [1.0, 3.0, 0.0], size=(500, 3))  # the third channel constant
    xte = rng.normal([0.0, 10.0, 5.0], [2.0, 3.0, 0.5], size=(200, 3))
    det = build_detector("zscore", load_params("params.yaml"), window=cfg.window, stride=cfg.stride).fit(xtr)
    std = xtr.std(axis=0)
    z = (xte - xtr.mean(axis=0)) / np.where(std > 0, std, 1.0)  # a constant channel keeps its own units
    np.testing.assert_allclose(det.decision_function(xte), np.sqrt((z ** 2).mean(axis=1)), rtol=1e-5)


def test_zscore_cannot_see_a_change_of_shape_within_the_training_range(cfg):
    # its blind spot, by construction: a sine whose period halves keeps every value in range
    t = np.arange(4000)
    x = np.sin(2 * np.pi * t / 40)
    x[3000:3200] = np.sin(2 * np.pi * t[3000:3200] / 20)
    y = np.zeros(2000, np.int8)
    y[1000:1200] = 1
    params = load_params("params.yaml")
    z = build_detector("zscore", params, window=cfg.window, stride=cfg.stride).fit(x[:2000, None])
    mp = build_detector("mp", params, window=cfg.window, stride=cfg.stride).fit(x[:2000, None])
    assert auc_scores(y, z.decision_function(x[2000:, None]))[1] < 0.6
    assert auc_scores(y, mp.decision_function(x[2000:, None]))[1] > 0.9


def test_too_short_training_series_is_refused(cfg):
    det = build_detector("iforest", load_params("params.yaml"), seed=0, window=cfg.window, stride=cfg.stride)
    with pytest.raises(ValueError, match="at least two windows"):
        det.fit(np.zeros((40, 1)))
