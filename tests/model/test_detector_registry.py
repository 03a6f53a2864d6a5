"""One registry, one interface: every detector name builds, fits, scores, saves and loads on the default data."""

from __future__ import annotations

import numpy as np
import pytest

import capmix
from capmix.data.synthetic import GeneratorConfig, generate
from capmix.detectors.base import BaseDetector, NotFittedError
from capmix.modelfiles import ModelFileError

#: the smallest budgets that still run every code path (this is an interface test, not a quality one)
QUICK = {"capmix": {"max_epochs": 2, "min_epochs": 1}, "peer": {"epochs": 1, "windows_per_epoch": 128},
         "baseline": {}, "ensemble": {"member_params": {"capmix": {"max_epochs": 2, "min_epochs": 1}}}}
QUICK_BASELINE = {"deepsvdd": {"epochs": 1}, "ocsvm": {"max_train_windows": 500}}


@pytest.fixture(scope="module")
def series():
    p = capmix.load_params("params.yaml")
    gen = {k: v for k, v in dict(p["generate"]).items() if k != "out"} if isinstance(p, dict) else \
        p.generate.model_dump(exclude={"out"})
    s = generate(GeneratorConfig.model_validate({**gen, "n_series": 1, "length": 3000}))[0]
    return s.train[0], s.test[0]


def _quick(name: str) -> dict:
    from capmix.detectors.registry import family

    return {**QUICK[family(name)], **QUICK_BASELINE.get(name, {}), "seed": 0}


@pytest.mark.parametrize("name", capmix.detector_names())
def test_every_detector_fits_scores_saves_and_loads(name, series, tmp_path):
    xtr, xte = series
    det = capmix.build_detector(name, **_quick(name))
    assert isinstance(det, BaseDetector)
    with pytest.raises(NotFittedError):
        det.decision_function(xte)
    assert det.fit(xtr) is det
    scores = det.decision_function(xte)
    assert scores.shape == (xte.shape[0],) and np.isfinite(scores).all()
    assert np.isfinite(det.threshold_)
    assert set(np.unique(det.predict(xte))) <= {0, 1}
    det.save(tmp_path / "m")
    loaded = capmix.load_detector(tmp_path / "m")
    assert type(loaded) is type(det) and loaded.threshold_ == det.threshold_
    if name != "random":  # the random scorer draws new numbers on every call by design
        np.testing.assert_allclose(loaded.decision_function(xte), scores, rtol=1e-6, atol=1e-6)
    assert loaded.versions_["capmix"] == capmix.__version__
    with pytest.raises(ValueError, match="channels"):
        loaded.decision_function(np.c_[xte, xte])


def test_get_set_params_round_trip():
    det = capmix.build_detector("iforest", n_estimators=7)
    assert det.get_params()["n_estimators"] == 7
    assert det.set_params(n_estimators=9) is det and det.get_params()["n_estimators"] == 9
    clone = det.clone()
    assert clone is not det and clone.get_params() == det.get_params()
    with pytest.raises(ValueError, match="no hyperparameter"):
        det.set_params(n_trees=3)
    cap = capmix.build_detector("cap", gamma=2.0)
    assert cap.get_params()["variant"] == "cap" and cap.set_params(alpha=0.3).get_params()["alpha"] == 0.3


def test_unknown_name_names_the_closest():
    with pytest.raises(ValueError, match="did you mean 'iforest'"):
        capmix.build_detector("iforst")


def test_load_reads_the_kind_from_the_folder(series, tmp_path):
    xtr, _ = series
    capmix.build_detector("mp", seed=0).fit(xtr).save(tmp_path / "mp")
    assert type(capmix.load_detector(tmp_path / "mp")).__name__ == "MatrixProfileDiscord"
    with pytest.raises(ModelFileError, match="does not exist"):
        capmix.load_detector(tmp_path / "nothing")
