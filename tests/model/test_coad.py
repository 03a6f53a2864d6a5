"""CoADDetector (capmix/detectors/coad.py): interface, persistence, determinism, and that it learns."""

import json

import numpy as np
import pytest

from capmix.detectors.coad import CoADConfig, CoADDetector
from capmix.config import detector_config, load_params
from capmix.detectors.base import NotFittedError
from capmix.modelfiles import ModelFileError
from capmix.detectors.registry import load_detector, pipeline_detector
from capmix.evaluation.evaluate import aggregate, evaluate_series
from capmix.detectors.registry import build_detector
from capmix.data.synthetic import GeneratorConfig, generate

#: small and fast: a fixed window, few random windows per epoch
FAST = dict(window=32, epochs=2, windows_per_epoch=256, hidden=8, layers=1, device="cpu",
            eval_window=32, eval_stride=8)


@pytest.fixture(scope="module")
def data():
    t = np.arange(3000)
    rng = np.random.default_rng(0)
    x = np.stack([np.sin(2 * np.pi * t / 16), np.cos(2 * np.pi * t / 24)], 1) + 0.1 * rng.standard_normal((3000, 2))
    return x[:2000], x[2000:]


@pytest.fixture(scope="module")
def fitted(data):
    return CoADDetector(CoADConfig(**FAST)).fit(data[0])


def test_interface_shapes_and_threshold(fitted, data):
    train, test = data
    assert fitted.window_ == 32 and fitted.n_channels_ == 2
    s = fitted.decision_function(test)
    assert s.shape == (1000,) and np.isfinite(s).all()
    assert 0.0 <= s.min() and s.max() <= 1.0  # mean of a probability and a squashed error
    assert np.array_equal(fitted.predict(test), (s > fitted.threshold_).astype(np.int8))
    assert len(fitted.history_) == 2 and 1 <= fitted.best_epoch_ <= 2
    # the threshold is mean + z * std of the held-out training-tail scores
    v = fitted.val_scores_
    assert fitted.threshold_ == pytest.approx(v.mean() + 3.0 * v.std())
    # segment pooling: scores are constant within each evaluation segment of 8 points
    assert np.all(np.ptp(s[:1000].reshape(-1, 8), axis=1) == 0)


def test_input_errors(fitted, data):
    with pytest.raises(NotFittedError):
        CoADDetector().decision_function(data[1])
    with pytest.raises(ValueError, match="channels"):
        fitted.decision_function(data[1][:, :1])
    with pytest.raises(ValueError, match="fewer than one window"):
        fitted.decision_function(data[1][:10])
    with pytest.raises(ValueError, match="NaN"):
        CoADDetector(CoADConfig(**FAST)).fit(np.full((500, 1), np.nan))
    with pytest.raises(ValueError, match="at least two windows"):
        CoADDetector(CoADConfig(**FAST)).fit(np.random.default_rng(0).standard_normal((50, 1)))


def test_window_follows_the_dominant_period(data):
    det = CoADDetector(CoADConfig(**{**FAST, "window": None, "epochs": 1})).fit(data[0])
    assert det.period_ == 20  # median of the two channels' periods (16 and 24)
    assert det.window_ % 8 == 0 and det.window_ == min(max(int(round(4 * det.period_ / 8)) * 8, 32), 256)


def test_save_load_round_trip_and_tamper_detection(fitted, data, tmp_path):
    path = fitted.save(tmp_path / "m")
    assert json.loads((path / "config.json").read_text())["detector"] == "coad"
    loaded = load_detector(path)
    assert isinstance(loaded, CoADDetector)
    assert np.array_equal(loaded.decision_function(data[1]), fitted.decision_function(data[1]))
    assert loaded.threshold_ == fitted.threshold_ and loaded.window_ == fitted.window_
    # a flipped byte in the weights, or a missing file, is refused
    w = path / "weights.pt"
    raw = bytearray(w.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    w.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        CoADDetector.load(path)
    (path / "state.json").unlink()
    with pytest.raises(ModelFileError, match="missing"):
        CoADDetector.load(path)


def test_same_seed_same_scores_other_seed_other_scores(fitted, data):
    again = CoADDetector(CoADConfig(**FAST)).fit(data[0])
    assert np.array_equal(again.decision_function(data[1]), fitted.decision_function(data[1]))
    other = CoADDetector(CoADConfig(**{**FAST, "seed": 1})).fit(data[0])
    assert not np.array_equal(other.decision_function(data[1]), fitted.decision_function(data[1]))


def test_registry_and_params_build_coad_on_the_capmix_segments():
    p = load_params("params.yaml").model_dump()  # the typed params as the dict the registry reads
    cfg = detector_config(p, preset="smd")
    det = build_detector("coad", p, seed=3, preset="smd")
    assert isinstance(det, CoADDetector)
    c = det.config
    assert (c.eval_window, c.eval_stride, c.threshold_z, c.seed) == (cfg.window, cfg.stride, cfg.threshold_z, 3)
    assert c.max_window == p["coad_presets"]["smd"]["max_window"]
    assert c.lr == p["coad"]["lr"]
    p["detector"] = "coad"
    assert isinstance(pipeline_detector(p), CoADDetector)
    p["detector"] = "nope"
    with pytest.raises(ValueError, match="detector"):
        pipeline_detector(p)


@pytest.fixture
def one_torch_thread():
    """BiGRU steps on two threads ran ~30x slower than on one when the 2 cores were shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_coad_learns_on_the_default_data(one_torch_thread):
    """Exactly the main job's data and params (coad section): test-period AUC-ROC well above chance."""
    p = load_params("params.yaml")
    series = generate(p.generate.generator())
    cfg = detector_config(p)
    res = []
    for s in series:
        # half the default epoch budget keeps the test near a minute; the full budget scores higher
        det = build_detector("coad", p, seed=0, preset="default", epochs=4, windows_per_epoch=2048).fit(*s.train)
        res.append(evaluate_series(s.name, det.decision_function(s.test[0]), s.test[1], det.threshold_,
                                   cfg.window, cfg.stride))
    agg = aggregate(res)
    print(f"coad default data: AUC-ROC {agg['window/auc_roc_mean']:.3f} AUC-PR {agg['window/auc_pr_mean']:.3f} "
          f"oracle RPA-F1 {agg['window/oracle/rpa_f1_eq13']:.3f}")
    assert agg["window/auc_roc_mean"] >= 0.6
