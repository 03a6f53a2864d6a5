"""The ensemble's multivariate rules: per channel (the default) and the joint window of its members (an option)."""

from __future__ import annotations

import numpy as np
import pytest

import capmix
from capmix.detectors.ensemble import EnsembleConfig, EnsembleDetector

# the tests of the ensemble's mechanics use the window-only pool: two fast members whose roles are
# easy to read; the default pool (CAPMix joins them) has its own test below
WINDOW = ("ocsvm", "iforest")


def _series(n_train: int = 1200, n_test: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two channels: a noisy sine, and a channel that is CONSTANT in training and has one spike in test."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_train + n_test)
    x = np.c_[np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(t.size), np.zeros(t.size)]
    x[n_train + 400, 1] = 1.0
    x[n_train + 600 : n_train + 620, 0] += 2.0  # an anomaly the joint window sees
    return x[:n_train], x[n_train:]


def _restored_without(det: EnsembleDetector, key: str) -> EnsembleDetector:
    """``det`` restored from a model file written before ``key`` was saved in the state."""
    import torch

    state = {k: v for k, v in det._state().items() if k != key}
    weights = {k: torch.as_tensor(np.asarray(v)) for k, v in det._weights().items()}
    old = EnsembleDetector()
    old.n_channels_ = det.n_channels_
    old._restore(state, weights, None)
    return old


@pytest.fixture(scope="module")
def data():
    return _series()


@pytest.fixture(scope="module")
def joint(data):
    xtr, _ = data
    return capmix.build_detector("ensemble", seed=0, members=WINDOW, multivariate="joint").fit(xtr)


def test_default_is_per_channel_with_the_members_fallback():
    """Joint lost on SMAP/MSL, the data kept for the check (docs/results.md): per channel stays the default."""
    cfg = EnsembleConfig()
    assert cfg.multivariate == "per_channel"
    assert cfg.members == ("capmix", "ocsvm", "iforest") and cfg.selection == "auto" and cfg.min_confidence == 0.3
    assert cfg.fallback == "members" and cfg.fallback_members is None


def test_default_pool_averages_capmix_density_with_the_window_members(data, tmp_path):
    """The default pool (docs/results.md, "Fourth round"): CAPMix, scored by the Gaussian density of its
    features, competes on confidence and joins OC-SVM and IForest in the fallback mean; a saved model
    scores the same."""
    xtr, xte = data
    det = capmix.build_detector("ensemble", seed=0, min_confidence=np.inf,  # never trust a pick: the fallback
                                member_params={"capmix": {"max_epochs": 2, "min_epochs": 1}}).fit(xtr[:, :1])
    assert det._member_names() == ["capmix", "ocsvm", "iforest"]
    assert det.members_[0].config.window_score == "gde"
    scores = det.decision_function(xte[:, :1])
    assert det.selection_[0]["chosen"] == "mean"
    members = det._member_candidates(det._check_input(xte[:, :1], det.config.window))
    assert [k for k, _, _, _ in members] == ["capmix", "ocsvm", "iforest"]
    np.testing.assert_allclose(scores, np.mean([z for _, _, z, _ in members], axis=0), rtol=1e-9, atol=1e-9)
    det.save(tmp_path / "m")
    loaded = capmix.load_detector(tmp_path / "m")
    assert loaded._member_names() == ["capmix", "ocsvm", "iforest"]
    np.testing.assert_allclose(loaded.decision_function(xte[:, :1]), scores, rtol=1e-5, atol=1e-5)


def test_multivariate_scores_are_the_joint_members_mean(joint, data):
    _, xte = data
    scores = joint.decision_function(xte)
    # one joint selection (no per-channel entries), and it is the fallback even if a member is confident
    assert len(joint.selection_) == 1 and joint.selection_[0]["channel"] is None
    assert joint.selection_[0]["chosen"] == "mean"
    assert [k for k, _, _ in joint.selection_[0]["candidates"]] == ["ocsvm", "iforest"]
    members = joint._member_candidates(joint._check_input(xte, joint.config.window))
    np.testing.assert_allclose(scores, np.mean([z for _, _, z, _ in members], axis=0))


def test_per_channel_maximum_is_what_the_joint_default_avoids(joint, data):
    """Per channel, the training-constant channel's spike is a confident pick with robust z in the
    billions, and the maximum over channels is that pick: the failure seen on ASD and SMD."""
    xtr, xte = data
    old = capmix.build_detector("ensemble", seed=0, members=WINDOW, multivariate="per_channel").fit(xtr)
    s_old = old.decision_function(xte)
    assert [ch["channel"] for ch in old.selection_] == [0, 1]
    assert old.selection_[1]["chosen"] != "mean"  # the constant channel's spike was picked
    assert s_old.max() > 1e6
    s_new = joint.decision_function(xte)
    assert s_new.max() < 1e6
    # the joint score still ranks the anomaly on channel 0 above the normal test part
    assert s_new[600:620].mean() > np.quantile(s_new[:400], 0.99)


def test_joint_selection_confidence_keeps_the_most_confident_member(data):
    xtr, xte = data
    det = capmix.build_detector("ensemble", seed=0, members=WINDOW, selection="confidence",
                                multivariate="joint").fit(xtr)
    scores = det.decision_function(xte)
    info = det.selection_[0]
    assert isinstance(info["chosen"], int) and info["chosen"] in (0, 1)
    members = det._member_candidates(det._check_input(xte, det.config.window))
    np.testing.assert_allclose(scores, members[info["chosen"]][2])


def test_univariate_and_memberless_inputs_are_unchanged(data):
    """The joint rule touches neither univariate input (UCR, NAB, AIOps) nor the ucr preset (no members)."""
    xtr, xte = data
    uni = [capmix.build_detector("ensemble", seed=0, members=WINDOW, multivariate=m).fit(xtr[:, :1]) for m in ("joint", "per_channel")]
    np.testing.assert_array_equal(uni[0].decision_function(xte[:, :1]), uni[1].decision_function(xte[:, :1]))
    assert uni[0].selection_[0]["channel"] == 0
    bare = capmix.build_detector("ensemble", seed=0, members=(), selection="confidence").fit(xtr)
    bare.decision_function(xte)
    assert [ch["channel"] for ch in bare.selection_] == [0, 1]


def test_saved_model_keeps_its_scoring_and_old_files_load_per_channel(joint, data, tmp_path):
    _, xte = data
    joint.save(tmp_path / "m")
    loaded = capmix.load_detector(tmp_path / "m")
    assert loaded.config.multivariate == "joint"
    np.testing.assert_allclose(loaded.decision_function(xte), joint.decision_function(xte), rtol=1e-6, atol=1e-6)
    # a file written before the joint default has no "multivariate" in its state: it was scored per channel
    assert _restored_without(joint, "multivariate").config.multivariate == "per_channel"


def test_flat_kinds_are_off_by_default_and_find_a_dropout_when_on():
    """``flat_kinds`` (inverse rolling statistics, chosen for the ucr preset on the odd UCR series)
    leave the default candidate set alone; switched on, the memberless confidence ensemble puts its
    top score inside a flat stretch of a noisy sine."""
    assert EnsembleConfig().flat_kinds == ()
    rng = np.random.default_rng(3)
    t = np.arange(6000)
    x = (np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(t.size))[:, None]
    x[4500:4650, 0] = x[4500, 0]
    kw = dict(seed=0, members=(), selection="confidence", mp_kinds=())
    flat = capmix.build_detector("ensemble", flat_kinds=("std_diff_inv", "std_inv"), **kw).fit(x[:3000])
    assert 1400 <= int(np.argmax(flat.decision_function(x[3000:]))) <= 1750
    chosen = flat.selection_[0]["candidates"][flat.selection_[0]["chosen"]]
    assert chosen[0].endswith("_inv") and chosen[1] in (100, 200) and flat.selection_[0]["confidence"] > 0.8
    plain = capmix.build_detector("ensemble", **kw).fit(x[:3000])
    plain.decision_function(x[3000:])
    assert plain.selection_[0]["confidence"] < 0.5  # the default candidates see the dropout only weakly


@pytest.fixture(scope="module")
def distorted_cycle():
    rng = np.random.default_rng(5)
    t = np.arange(9000)
    x = (np.sin(2 * np.pi * t / 60) + 0.05 * rng.standard_normal(t.size))[:, None]
    x[7000:7030, 0] = -x[7000:7030, 0]  # half a cycle upside down, in the scored part
    return x[:5000], x[5000:]


def test_sweep_scheme_finds_the_anomaly_and_survives_save_and_load(distorted_cycle, tmp_path):
    """``scheme: sweep`` (whole-series kinds on a window sweep, ranked by peak ratio): the top score
    lands on the anomaly, the chosen score is in units of its training maximum (so the top is
    above 1 and the threshold comes from the held-out tail alike), and a saved model scores the same."""
    xtr, xte = distorted_cycle
    det = capmix.build_detector("ensemble", seed=0, members=(), selection="confidence", scheme="sweep",
                                sweep_min_window=30, sweep_max_window=120, sweep_growth=2.0).fit(xtr)
    s = det.decision_function(xte)
    assert s.shape == (xte.shape[0],)
    assert 2000 - 100 <= int(np.argmax(s)) <= 2030 + 100
    info = det.selection_[0]
    assert {w for _, w, _ in info["candidates"]} == {30, 60, 120}
    assert info["confidence"] > 1.2 and s.max() > 1.0
    assert det.predict(xte)[1950:2080].any()
    det.save(tmp_path / "m")
    again = capmix.load_detector(tmp_path / "m")
    assert again.config.scheme == "sweep"
    np.testing.assert_allclose(again.decision_function(xte), s)


def test_sweep_scheme_auto_falls_back_to_the_members_below_min_ratio(distorted_cycle):
    xtr, xte = distorted_cycle
    kw = dict(seed=0, scheme="sweep", sweep_min_window=30, sweep_max_window=60, sweep_growth=2.0,
              members=("iforest",), selection="auto")
    picked = capmix.build_detector("ensemble", min_ratio=1.0, **kw).fit(xtr)
    picked.decision_function(xte)
    assert picked.selection_[0]["chosen"] != "mean"
    fallback = capmix.build_detector("ensemble", min_ratio=1e6, **kw).fit(xtr)
    s = fallback.decision_function(xte)
    assert fallback.selection_[0]["chosen"] == "mean"
    member = fallback.members_[0]
    ref = np.asarray(member.val_scores_, dtype=np.float64)
    from capmix.detectors.classic import robust_z
    np.testing.assert_allclose(s, robust_z(member.decision_function(xte), ref))


def test_unknown_sweep_kind_is_a_config_error():
    with pytest.raises(ValueError, match="sweep_kinds"):
        EnsembleConfig(sweep_kinds=("ptp", "wobble"))


@pytest.fixture(scope="module")
def two_anomalies():
    """A noisy sine with two anomalies in the scored part: a burst of noise (the classic candidates'
    kind) and a short level shift."""
    rng = np.random.default_rng(11)
    t = np.arange(7000)
    x = (np.sin(2 * np.pi * t / 50) + 0.1 * rng.standard_normal(t.size))[:, None]
    x[5000:5060, 0] += 1.5 * rng.standard_normal(60)
    x[6200:6300, 0] += 0.8
    return x[:4000], x[4000:]


@pytest.mark.parametrize("combine", ["replace", "mean", "max"])
def test_a_trusted_pick_replaces_or_joins_the_fallback(two_anomalies, combine):
    """``pick_combine``: a trusted pick (here every pick is trusted) replaces the members' fallback,
    or joins it by the mean or the maximum of the two robust z-scores."""
    xtr, xte = two_anomalies
    det = capmix.build_detector("ensemble", seed=0, members=WINDOW, min_confidence=-1.0,
                                pick_combine=combine).fit(xtr)
    s = det.decision_function(xte)
    info = det.selection_[0]
    assert info["chosen"] != "mean"
    x = det._check_input(xte, det.config.window)
    members = det._member_candidates(x)
    fallback = np.mean([z for _, _, z, _ in members], axis=0)
    bare = capmix.build_detector("ensemble", seed=0, members=WINDOW, min_confidence=-1.0,
                                 pick_combine="replace").fit(xtr)
    pick = bare.decision_function(xte)
    expected = {"replace": pick, "mean": (pick + fallback) / 2, "max": np.maximum(pick, fallback)}[combine]
    np.testing.assert_allclose(s, expected, rtol=1e-9, atol=1e-9)
    if combine == "max":  # the pick adds an anomaly, it never hides what the fallback scores high
        assert np.all(s >= fallback - 1e-12) and info["combined"] == "max"


def test_an_untrusted_pick_leaves_the_fallback_alone_whatever_the_combination(two_anomalies):
    xtr, xte = two_anomalies
    scores = [capmix.build_detector("ensemble", seed=0, members=WINDOW, min_confidence=np.inf,
                                    pick_combine=c).fit(xtr)
              .decision_function(xte) for c in ("replace", "mean", "max")]
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(scores[0], scores[2])


def test_pick_combine_survives_save_and_old_files_keep_replacing(two_anomalies, tmp_path):
    xtr, xte = two_anomalies
    det = capmix.build_detector("ensemble", seed=0, members=WINDOW, pick_combine="mean").fit(xtr)
    det.save(tmp_path / "m")
    loaded = capmix.load_detector(tmp_path / "m")
    assert loaded.config.pick_combine == "mean"
    np.testing.assert_allclose(loaded.decision_function(xte), det.decision_function(xte), rtol=1e-6, atol=1e-6)
    assert _restored_without(det, "pick_combine").config.pick_combine == "replace"


def test_fallback_members_outside_members_is_a_config_error():
    """A preset that changes ``members`` and inherits the base ``fallback_members`` would average
    fewer members than intended; it is refused with the fix in the message."""
    with pytest.raises(ValueError, match=r"fallback_members \['iforest'\] are not among members"):
        EnsembleConfig(members=("capmix", "ocsvm"), fallback_members=("ocsvm", "iforest"))
    assert EnsembleConfig(members=(), fallback_members=("ocsvm",)).members == ()  # no members: nothing to check


def test_member_weights_must_name_members_and_be_positive():
    with pytest.raises(ValueError, match=r"member_weights names \['iforest'\], which are not among members"):
        EnsembleConfig(members=("capmix", "ocsvm"), member_weights={"iforest": 1.0})
    with pytest.raises(ValueError, match=r"must be positive"):
        EnsembleConfig(members=("ocsvm", "iforest"), member_weights={"ocsvm": 0.0})


def test_member_weights_weigh_the_fallback_mean_and_survive_save(two_anomalies, tmp_path):
    """``member_weights``: the fallback is the weighted mean of the members' robust z-scores (a member
    not named weighs 1), the held-out threshold comes from the same weighting, and it is saved."""
    xtr, xte = two_anomalies
    kw = dict(seed=0, classic=False, selection="mean", members=("ocsvm", "iforest"),
              member_params={"ocsvm": {"max_train_windows": 300}})
    det = capmix.build_detector("ensemble", member_weights={"ocsvm": 3.0}, **kw).fit(xtr)
    plain = capmix.build_detector("ensemble", **kw).fit(xtr)
    (_, _, z_o, _), (_, _, z_i, _) = plain._member_candidates(det._check_input(xte, det.config.window))
    scores = det.decision_function(xte)
    np.testing.assert_allclose(scores, (3 * z_o + z_i) / 4, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(plain.decision_function(xte), (z_o + z_i) / 2, rtol=1e-9, atol=1e-9)
    assert det.threshold_ != plain.threshold_  # the held-out tail is weighted alike
    det.save(tmp_path / "m")
    loaded = capmix.load_detector(tmp_path / "m")
    assert loaded.config.member_weights == {"ocsvm": 3.0}
    np.testing.assert_allclose(loaded.decision_function(xte), scores, rtol=1e-6, atol=1e-6)


def test_every_ensemble_preset_in_params_builds():
    """params.yaml's presets merge over its ``ensemble`` section into a valid config; the aiops one
    averages CAPMix and OC-SVM with no classic candidates (docs/results.md)."""
    from pathlib import Path

    import yaml

    from capmix.detectors.registry import build_detector

    params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    for preset in params["ensemble_presets"]:
        build_detector("ensemble", params, preset=preset)
    aiops = build_detector("ensemble", params, preset="aiops").config
    assert aiops.members == aiops.fallback_members == ("capmix", "ocsvm")
    assert aiops.member_weights == {"capmix": 0.6, "ocsvm": 0.4}  # chosen on the odd KPIs (docs/results.md)
    assert not aiops.classic and aiops.selection == "mean"
    for name in ("smd", "asd"):  # the multivariate sets: three members in units of held-out surprise
        mv = build_detector("ensemble", params, preset=name).config
        assert mv.members == mv.fallback_members == ("capmix", "ocsvm", "iforest")
        assert not mv.classic and mv.selection == "mean" and mv.member_scale == "tail"
    assert build_detector("ensemble", params).config.member_scale == "z"  # the library default is unchanged


def test_member_scales_keep_the_order_and_tail_is_the_held_out_surprise():
    from capmix.detectors.ensemble import scale_member

    ref = np.arange(100, dtype=np.float64)  # held-out scores 0..99
    z = np.array([-5.0, 0.0, 49.5, 98.0, 99.0, 100.0, 200.0])
    for scale in ("z", "log", "tail"):
        out = scale_member(z, scale, ref)
        # monotone: each member's own ranking is kept (tail: below every held-out score all tie at 0)
        assert np.all(np.diff(out) >= 0) and np.all(np.diff(out[1:]) > 0), scale
    tail = scale_member(z, "tail", ref)
    # 50 of 100 held-out scores are >= 49.5: -log10(51/101); the top one is matched by 1 of 100
    np.testing.assert_allclose(tail[2], -np.log10(51 / 101))
    np.testing.assert_allclose(tail[4], -np.log10(2 / 101))
    # beyond every held-out score: the ceiling -log10(1/101) plus one unit per spread of the top 1 %
    top_spread = 99.0 - ref[int(0.99 * 99)]
    np.testing.assert_allclose(tail[6], -np.log10(1 / 101) + (200.0 - 99.0) / top_spread)
    np.testing.assert_allclose(scale_member(z, "log"), np.sign(z) * np.log1p(np.abs(z)))
    with pytest.raises(ValueError, match="unknown member scale"):
        scale_member(z, "rank")


def test_member_scale_tail_puts_members_in_the_same_units_and_survives_save(two_anomalies, tmp_path):
    """``tail``: the mean of the members' held-out surprise; saved with the model, and files written
    before the option keep averaging robust z-scores."""
    xtr, xte = two_anomalies
    kw = dict(seed=0, members=WINDOW, classic=False, selection="mean")
    det = capmix.build_detector("ensemble", member_scale="tail", **kw).fit(xtr)
    plain = capmix.build_detector("ensemble", **kw).fit(xtr)
    x = det._check_input(xte, det.config.window)
    from capmix.detectors.ensemble import scale_member

    expected = np.mean([scale_member(z, "tail", ref) for _, _, z, ref in plain._member_candidates(x)], axis=0)
    np.testing.assert_allclose(det.decision_function(xte), expected, rtol=1e-9, atol=1e-9)
    # every member's held-out scores map into [0, log10(n + 1)]: the same units for all of them
    for _, _, _, ref in det._member_candidates(x):
        assert ref.min() >= 0 and ref.max() <= np.log10(ref.size + 1) + 1e-9
    det.save(tmp_path / "m")
    loaded = capmix.load_detector(tmp_path / "m")
    assert loaded.config.member_scale == "tail"
    np.testing.assert_allclose(loaded.decision_function(xte), det.decision_function(xte), rtol=1e-6, atol=1e-6)
    assert _restored_without(det, "member_scale").config.member_scale == "z"


def test_member_seeds_fit_restarts_and_confidence_picks_among_them(two_anomalies, tmp_path):
    """``member_seeds``: every member is fitted with seeds seed, seed+1, ...; ``selection: confidence``
    returns the restart whose top peak stands out most (here without the training reference)."""
    from capmix.detectors.confidence import peak_confidence

    xtr, xte = two_anomalies
    det = capmix.build_detector("ensemble", seed=3, members=("ocsvm",), member_seeds=2, classic=False,
                                selection="confidence", confidence_reference=False,
                                member_params={"ocsvm": {"max_train_windows": 300}}).fit(xtr)
    assert [m.seed for m in det.members_] == [3, 4] and det._member_names() == ["ocsvm", "ocsvm"]
    scores = det.decision_function(xte)
    x = det._check_input(xte, det.config.window)
    cands = det._member_candidates(x)
    conf = [peak_confidence(z, max(w, det.config.min_exclusion)) for _, w, z, _ in cands]
    np.testing.assert_allclose(scores, cands[int(np.argmax(conf))][2])
    assert [round(c, 6) for c in conf] == [round(q, 6) for _, _, q in det.selection_[0]["candidates"]]
    det.save(tmp_path / "m")
    loaded = capmix.load_detector(tmp_path / "m")
    assert [m.seed for m in loaded.members_] == [3, 4]
    np.testing.assert_allclose(loaded.decision_function(xte), scores, rtol=1e-6, atol=1e-6)
