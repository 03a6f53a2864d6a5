"""CoAD building blocks (capmix/detectors/coad.py): period estimate, pseudo-anomalies, soft masks, shapes."""

import numpy as np
import pytest
import torch

from capmix.detectors.coad import (
    KINDS,
    CoADConfig,
    CoADNet,
    coad_window,
    dominant_period,
    inject_pseudo_anomalies,
    mix_mask,
    patch_spectrum,
    spectrum_size,
)


@pytest.mark.parametrize("period", [12, 25, 50, 100])
def test_dominant_period_of_a_noisy_sine(period):
    t = np.arange(6000)
    x = np.sin(2 * np.pi * t / period) + 0.2 * np.random.default_rng(0).standard_normal(t.size)
    assert dominant_period(x) == period


def test_dominant_period_is_the_median_over_channels_and_none_for_constant_data():
    t = np.arange(4000)
    x = np.stack([np.sin(2 * np.pi * t / p) for p in (20, 40, 40)], axis=1)
    assert dominant_period(x) == 40
    assert dominant_period(np.ones(500)) is None


def test_window_is_four_periods_rounded_to_patches_and_clamped():
    cfg = CoADConfig(min_window=32, max_window=256, patch=8)
    assert coad_window(25, cfg) == 96  # 4 * 25 = 100 -> nearest multiple of 8
    assert coad_window(3, cfg) == 32  # clamped up
    assert coad_window(500, cfg) == 256  # clamped down
    assert coad_window(None, cfg) == 32
    assert coad_window(25, cfg.replace(window=48)) == 48


def test_config_validates_ranges():
    with pytest.raises(ValueError, match="multiple of patch"):
        CoADConfig(window=60)
    with pytest.raises(ValueError, match="n_fft"):
        CoADConfig(patch=4, n_fft=8, min_window=32)
    with pytest.raises(ValueError):
        CoADConfig(lr=0)
    with pytest.raises(ValueError):
        CoADConfig(anomaly_prob=1.5)
    with pytest.raises(ValueError, match="min_window"):
        CoADConfig(min_window=128, max_window=64)


@pytest.mark.parametrize("seed", range(3))
def test_pseudo_anomalies_change_only_the_span_and_label_its_patches(seed):
    rng = np.random.default_rng(seed)
    x = np.sin(np.arange(64) / 4.0)[None].repeat(200, 0).astype(np.float32)
    x += 0.1 * rng.standard_normal(x.shape).astype(np.float32)
    xa, span, labels, kinds = inject_pseudo_anomalies(x, rng, patch=8, prob=0.6)
    assert xa.shape == x.shape and labels.shape == (200, 8)
    # points outside the span are untouched
    assert np.array_equal(xa[~span], x[~span])
    # a patch is labelled iff the span overlaps it
    expected = span.reshape(200, 8, 8).any(-1)
    assert np.array_equal(labels.astype(bool), expected)
    # untouched windows have no labels and kind -1; about 60 % were hit, each with one contiguous span
    hit = span.any(1)
    assert np.array_equal(hit, kinds >= 0)
    assert 0.45 < hit.mean() < 0.75
    for row in span[hit]:
        idx = np.flatnonzero(row)
        assert idx[-1] - idx[0] + 1 == idx.size
    assert set(kinds[hit]) <= set(range(len(KINDS)))
    # the span really changed for the kinds that cannot be an identity (all but a lucky constant)
    changed = np.abs(xa - x).max(1) > 1e-6
    assert changed[hit].mean() > 0.95


def test_each_pseudo_anomaly_kind_does_what_it_says():
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 32, dtype=np.float32)[None].repeat(50, 0)
    for name in KINDS:
        xa, span, _, kinds = inject_pseudo_anomalies(x, np.random.default_rng(1), 8, prob=1.0, kinds=(name,))
        assert (kinds == KINDS.index(name)).all()
        seg, orig = xa[0][span[0]], x[0][span[0]]
        if name == "constant":
            assert np.allclose(seg, seg[0])
        elif name == "flip":
            assert np.allclose(seg, 2 * orig.mean() - orig, atol=1e-5)
        elif name == "scale":
            d, d0 = seg - orig.mean(), orig - orig.mean()
            ratio = (d @ d0) / (d0 @ d0)
            assert ratio < 0.55 or ratio > 1.95
    del rng


def test_soft_mask_is_exactly_p_mask_plus_one_minus_p_emb():
    torch.manual_seed(0)
    emb = torch.randn(3, 5, 4, dtype=torch.float64)
    token = torch.randn(4, dtype=torch.float64)
    p = torch.rand(3, 5, dtype=torch.float64)
    out = mix_mask(emb, token, p)
    for b in range(3):
        for n in range(5):
            assert torch.equal(out[b, n], p[b, n] * token + (1 - p[b, n]) * emb[b, n])
    assert torch.equal(mix_mask(emb, token, torch.ones(3, 5, dtype=torch.float64))[1, 2], token)
    assert torch.equal(mix_mask(emb, token, torch.zeros(3, 5, dtype=torch.float64)), emb)


def test_patch_spectrum_matches_a_hand_rolled_stft():
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    spec = patch_spectrum(x, 4)
    assert spec.shape == (2, 3, spectrum_size(8, 4)) == (2, 3, 9)
    win = torch.hann_window(4, dtype=torch.float64)
    frames = torch.stack([x[0, 1, s : s + 4] * win for s in (0, 2, 4)], dim=-1)  # (4, frames)
    ref = torch.fft.rfft(frames, dim=0).abs().reshape(-1)
    assert torch.allclose(spec[0, 1], ref)


def test_network_shapes_and_max_fusion():
    torch.manual_seed(0)
    net = CoADNet(patch=8, n_fft=4, hidden=16, layers=2)
    x = torch.randn(5, 64)
    logits, rec = net(x)
    assert logits.shape == (5, 8) and rec.shape == (5, 8, 8)
    patches = net.patches(x)
    assert torch.equal(patches[1, 2], x[1, 16:24])
    # fused logits are the element-wise max of the two branches
    with torch.no_grad():
        ht, _ = net.encoder(net.time_embed(patches))
        hf, _ = net.encoder(net.freq_embed(patch_spectrum(patches, 4)))
        lt, lf = net.time_head(ht).squeeze(-1), net.freq_head(hf).squeeze(-1)
    assert torch.allclose(logits, torch.maximum(lt, lf), atol=1e-5)
    assert not torch.allclose(lt, lf)  # two distinct branches
