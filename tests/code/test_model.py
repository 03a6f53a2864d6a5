"""Network shapes, mixup label arithmetic and the soft-label loss."""

import numpy as np
import pytest
import torch

from capmix.detectors.capmix.network import TCN, feature_length, soft_cross_entropy


@pytest.mark.parametrize("w,k,expected", [(32, 4, 6), (64, 8, 10), (256, 4, 34), (32, 8, 6)])
def test_feature_length(w, k, expected):
    assert feature_length(w, k) == expected
    model = TCN(2, w, k, 16, 0.45)
    h = torch.randn(3, w, 2).transpose(1, 2).unsqueeze(2)
    for block in model.blocks:
        h = block(h)
    assert h.shape == (3, 16, 1, feature_length(w, k))


@pytest.mark.parametrize("layer", [0, 1, 2, 3])
def test_mixup_at_each_layer_runs(layer):
    model = TCN(3, 64, 8, 32, 0.0).eval()
    x = torch.randn(8, 64, 3)
    perm = torch.randperm(8)
    out = model(x, mix=(layer, 0.3, perm))
    assert out.shape == (8, 2)


def test_input_mixup_is_convex_combination():
    model = TCN(1, 32, 4, 8, 0.0).eval()
    x = torch.randn(4, 32, 1)
    perm = torch.tensor([1, 0, 3, 2])
    lam = 0.25
    mixed_input = lam * x + (1 - lam) * x[perm]
    torch.testing.assert_close(model(x, mix=(0, lam, perm)), model(mixed_input))


def test_mixup_label_arithmetic():
    # y_mix = lam*y + (1-lam)*y[perm]: a normal (0) mixed with a soft anomaly (1/3) at lam=0.25
    y = torch.tensor([0.0, 1 / 3, 1.0, 0.0])
    perm = torch.tensor([1, 0, 3, 2])
    lam = 0.25
    y_mix = lam * y + (1 - lam) * y[perm]
    torch.testing.assert_close(y_mix, torch.tensor([0.25, 1 / 12, 0.25, 0.75]))


def test_soft_labels_reach_the_loss():
    logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    p = torch.softmax(logits, 1)[:, 1]
    for y in (torch.tensor([1.0, 0.0]), torch.tensor([1 / 3, 0.5])):
        expected = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
        torch.testing.assert_close(soft_cross_entropy(logits, y), expected)
    # a soft label gives a different loss than its int cast would
    assert soft_cross_entropy(logits, torch.tensor([1 / 3, 0.0])) != soft_cross_entropy(logits, torch.tensor([0.0, 0.0]))


def test_gradient_flows_through_hidden_mixup():
    model = TCN(1, 32, 4, 8, 0.0)
    x = torch.randn(6, 32, 1)
    loss = soft_cross_entropy(model(x, mix=(2, 0.6, torch.randperm(6))), torch.rand(6))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_blocks_equal_the_conv1d_formulation():
    """The 1 x k Conv2d blocks compute METHOD.md's Conv1d -> BN -> ReLU -> MaxPool1d exactly."""
    from torch import nn

    torch.manual_seed(0)
    model = TCN(3, 64, 8, 16, 0.45).eval()
    block = model.blocks[0]
    conv = nn.Conv1d(3, 32, 8, padding=4, bias=False)
    conv.weight.data = block[0].weight.data.squeeze(2).clone()
    bn = nn.BatchNorm1d(32).eval()
    bn.load_state_dict({k: v for k, v in block[1].state_dict().items()})
    bn.running_mean.uniform_(-1, 1)
    block[1].running_mean.copy_(bn.running_mean)
    ref = nn.Sequential(conv, bn, nn.ReLU(), nn.MaxPool1d(2, 2, 1))
    x = torch.randn(5, 3, 64)
    torch.testing.assert_close(block(x.unsqueeze(2)).squeeze(2), ref(x), rtol=1e-5, atol=1e-5)


def test_map_windows_takes_read_only_windows_without_a_torch_warning():
    """Scoring a read-only array (a window view, a memory map, pandas' copy-on-write values) must not
    hand torch a non-writable buffer: torch warns once per process, and writes would be undefined."""
    import warnings

    from capmix.detectors.capmix.training import map_windows

    model = TCN(1, 32, 4, 8, 0.0).eval()
    x = np.random.default_rng(0).standard_normal((10, 32, 1)).astype(np.float32)
    x.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = map_windows(lambda xb: model(xb)[:, 1], model, x, 4, torch.device("cpu"))
    assert out.shape == (10,)
    assert not x.flags.writeable  # the caller's array is left as it was
