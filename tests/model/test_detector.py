"""Detector behaviour: the estimator contract, determinism, persistence and bad input."""

import json

import numpy as np
import pytest
import torch

from capmix import CAPMixDetector, DetectorConfig
from capmix.detectors.base import NotFittedError
from capmix.modelfiles import ModelFileError

FAST = dict(window=32, stride=8, kernel=4, features=16, max_epochs=3, min_epochs=1, min_patch=6, batch_size=128)


def _series(n=3000, c=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = np.sin(2 * np.pi * t / 50)[:, None] * np.linspace(1, 2, c)[None]
    return base + 0.1 * rng.standard_normal((n, c))


@pytest.fixture(scope="module")
def fitted():
    return CAPMixDetector(**FAST).fit(_series(c=2))


def test_fit_returns_self_and_learned_state(fitted):
    assert fitted.n_channels_ == 2
    assert np.isfinite(fitted.threshold_)
    assert fitted.history_ and fitted.augmentation_["n_injected"] > 0
    assert len(fitted.train_digest_) == 64


def test_init_only_stores_config():
    det = CAPMixDetector(DetectorConfig(), gamma=2.0)
    assert det.config.gamma == 2.0
    assert not hasattr(det, "model_")
    with pytest.raises(NotFittedError):
        det.decision_function(np.zeros(100))


def test_score_every_point(fitted):
    x = _series(n=1003, c=2, seed=1)  # 1003 is not a multiple of the stride: a tail exists
    s = fitted.decision_function(x)
    assert s.shape == (1003,)
    assert np.isfinite(s).all() and (s >= 0).all()  # squared Mahalanobis distances (window_score gde)
    assert set(np.unique(fitted.predict(x))) <= {0, 1}


def test_same_seed_identical_scores():
    x = _series()
    a = CAPMixDetector(**FAST, seed=7).fit(x).decision_function(x)
    b = CAPMixDetector(**FAST, seed=7).fit(x).decision_function(x)
    np.testing.assert_array_equal(a, b)


def test_monitor_records_every_epoch_without_changing_the_model():
    x, later = _series(), _series(n=1000, seed=5)
    # the monitor records the classifier's p after every epoch, whatever the window score
    plain = CAPMixDetector(**FAST, seed=3, window_score="classifier").fit(x)
    watched = CAPMixDetector(**FAST, seed=3, window_score="classifier").fit(x, monitor=later)
    n_windows = (1000 - FAST["window"]) // FAST["stride"] + 1
    assert watched.monitor_scores_.shape == (len(watched.history_), n_windows)
    np.testing.assert_array_equal(plain.decision_function(later), watched.decision_function(later))
    # the best epoch's recorded scores are the final model's window scores
    np.testing.assert_allclose(watched.monitor_scores_[watched.best_epoch_ - 1], watched.score_windows(later),
                               rtol=1e-4, atol=1e-6)  # the scorer folds BatchNorm: float32 rounding
    with pytest.raises(ValueError, match="monitor has 2 channels but the model was trained on 1"):
        CAPMixDetector(**FAST).fit(x, monitor=_series(n=1000, c=2))


def test_save_load_identical(fitted, tmp_path):
    x = _series(c=2, seed=3)
    fitted.save(tmp_path / "m")
    loaded = CAPMixDetector.load(tmp_path / "m")
    np.testing.assert_array_equal(fitted.decision_function(x), loaded.decision_function(x))
    assert loaded.threshold_ == fitted.threshold_
    assert loaded.train_digest_ == fitted.train_digest_
    state = json.loads((tmp_path / "m" / "state.json").read_text())
    assert {"torch", "numpy", "capmix"} <= set(state["versions"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_tampered_model_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    with open(path / "weights.pt", "ab") as f:
        f.write(b"junk")
    with pytest.raises(ModelFileError, match="checksum"):
        CAPMixDetector.load(path)
    (path / "config.json").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        CAPMixDetector.load(path)


@pytest.mark.parametrize(
    "x,match",
    [
        (np.array([[1.0, np.nan]] * 500), "NaN"),
        (np.array([[1.0, np.inf]] * 500), "NaN/inf"),
        (np.zeros((4, 5, 6)), "shape"),
        (np.zeros((0, 2)), "empty"),
        (_series(n=20), "fewer points than one window|fewer than one window"),
        (np.ones((500, 2)), "constant"),
        ([["a", "b"]] * 100, "numeric"),
    ],
)
def test_bad_fit_input(x, match):
    with pytest.raises(ValueError, match=match):
        CAPMixDetector(**FAST).fit(x)


@pytest.mark.parametrize(
    "y,match",
    [(np.full(3000, 2), "only 0 and 1"), (np.zeros(10), "shape"), (np.ones(3000), "every training point")],
)
def test_bad_labels(y, match):
    with pytest.raises(ValueError, match=match):
        CAPMixDetector(**FAST).fit(_series(), y)


def test_channel_mismatch_at_scoring(fitted):
    with pytest.raises(ValueError, match="trained on 2"):
        fitted.decision_function(_series(c=3))
    with pytest.raises(ValueError, match="fewer than one window"):
        fitted.decision_function(_series(n=10, c=2))


def test_constant_channel_warns_but_trains():
    x = _series(c=2)
    x[:, 1] = 5.0
    with pytest.warns(UserWarning, match="constant"):
        det = CAPMixDetector(**FAST).fit(x)
    assert np.isfinite(det.decision_function(x)).all()


@pytest.mark.parametrize("bad", [dict(gamma=1.0), dict(alpha=0), dict(window=4), dict(stride=80, window=64), dict(mixup_layers=(5,))])
def test_bad_config(bad):
    with pytest.raises(ValueError):
        DetectorConfig(**bad)


@pytest.mark.parametrize("variant", ["cap", "cap-gamma", "cap-mix", "capmix"])
def test_variants_are_configurations(variant):
    cfg = DetectorConfig(variant=variant)
    assert (cfg.use_revision, cfg.use_mixup) == {
        "cap": (False, False), "cap-gamma": (True, False), "cap-mix": (False, True), "capmix": (True, True)
    }[variant]
    det = CAPMixDetector(cfg, **FAST).fit(_series())
    assert ("n_soft" in det.augmentation_) == cfg.use_revision


def test_hard_label_ablation_zeroes_soft_labels():
    from capmix.detectors.capmix.training import build_training_data
    cfg = DetectorConfig(**FAST, gamma=1.01, soft_labels=False)
    data = build_training_data(_series().astype(np.float32), None, cfg, np.random.default_rng(0))
    assert set(np.unique(data.y_train)) <= {0.0, 1.0}
    cfg = cfg.replace(soft_labels=True)
    data = build_training_data(_series().astype(np.float32), None, cfg, np.random.default_rng(0))
    assert np.isclose(data.y_train, 1 / 1.01).any()


def test_prepare_save_load_fit_equals_fit(tmp_path):
    """The pipeline's split (prepare task -> npz -> train task) gives the same model as fit."""
    from capmix.detectors.capmix.training import AugmentedData

    x = _series(c=2)
    direct = CAPMixDetector(**FAST, seed=3).fit(x)
    det = CAPMixDetector(**FAST, seed=3)
    path = det.prepare(x).save(tmp_path / "aug.npz")
    split = det.fit_prepared(AugmentedData.load(path))
    np.testing.assert_array_equal(direct.decision_function(x), split.decision_function(x))
    assert split.train_digest_ == direct.train_digest_


def test_concurrent_fits_in_threads_are_deterministic():
    """A thread-pool task runner trains several series at once; each must equal its solo fit."""
    from concurrent.futures import ThreadPoolExecutor

    xs = [_series(seed=i) for i in range(3)]
    solo = [CAPMixDetector(**FAST).fit(x).decision_function(x) for x in xs]
    with ThreadPoolExecutor(3) as ex:
        together = list(ex.map(lambda x: CAPMixDetector(**FAST).fit(x).decision_function(x), xs))
    for a, b in zip(solo, together):
        np.testing.assert_array_equal(a, b)


def test_gde_window_score_ranks_an_outlier_and_survives_save_load(tmp_path):
    x = _series(c=2)
    det = CAPMixDetector(**FAST).fit(x)  # window_score gde is the default
    assert det.density_ is not None and det.density_.precision.shape[0] == det.model_.head[0].out_features
    test = _series(n=1000, c=2, seed=4)
    test[600:620] += 3.0  # a level shift the training data never had
    s = det.decision_function(test)
    assert np.isfinite(s).all() and (s >= 0).all()
    assert 600 - FAST["window"] <= int(np.argmax(s)) < 620
    assert np.isfinite(det.threshold_) and det.threshold_ > np.median(s)
    det.save(tmp_path / "m")
    loaded = CAPMixDetector.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.decision_function(test), s)
    # streaming scores go through the same window score
    streamed = np.concatenate(list(loaded.score_chunks(iter(np.array_split(test, 7)))))
    np.testing.assert_allclose(streamed, s, rtol=1e-5)


def test_gde_and_classifier_share_the_network(fitted):
    x = _series(c=2)
    classifier = CAPMixDetector(**FAST, window_score="classifier").fit(x)
    # the same seed trains the same network: only the window score differs
    for a, b in zip(classifier.model_.state_dict().values(), fitted.model_.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert classifier.density_ is None and fitted.density_ is not None
    s = classifier.decision_function(x)
    assert (s >= 0).all() and (s <= 1).all()  # the paper's score: p of the anomalous class


def _rewrite(path, name, edit):
    """Edit one JSON file of a model folder and re-sign it, as a consistent (not truncated) file."""
    from capmix.modelfiles import CHECKSUMS, sha256_file

    data = json.loads((path / name).read_text())
    edit(data)
    (path / name).write_text(json.dumps(data))
    sums = json.loads((path / CHECKSUMS).read_text())
    sums[name] = sha256_file(path / name)
    (path / CHECKSUMS).write_text(json.dumps(sums))


def test_model_file_with_the_wrong_window_score_refused(fitted, tmp_path):
    path = fitted.save(tmp_path / "m")
    _rewrite(path, "config.json", lambda c: c.update(window_score="classifier"))
    _rewrite(path, "state.json", lambda c: c.update(window_score="classifier"))
    with pytest.raises(ModelFileError, match="the weights hold the feature density"):
        CAPMixDetector.load(path)


def test_model_saved_before_window_score_existed_loads_as_classifier(tmp_path):
    x = _series()
    det = CAPMixDetector(**FAST, window_score="classifier").fit(x)
    path = det.save(tmp_path / "m")
    _rewrite(path, "config.json", lambda c: c.pop("window_score"))
    _rewrite(path, "state.json", lambda c: c.pop("window_score"))
    loaded = CAPMixDetector.load(path)
    assert loaded.config.window_score == "classifier" and loaded.density_ is None
    np.testing.assert_array_equal(loaded.decision_function(x), det.decision_function(x))
