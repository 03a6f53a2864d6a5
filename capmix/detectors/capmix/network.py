"""The CAPMix TCN with dual-space (input + hidden) mixup (METHOD.md section 4)."""

from __future__ import annotations

import copy

import torch
from torch import nn

#: Block 2 and 3 convolution settings and block widths of the reference architecture.
HIDDEN_KERNEL = 8
BLOCK1_WIDTH = 32
BLOCK2_WIDTH = 64
POOL = dict(kernel_size=2, stride=2, padding=1)
#: The same pooling as a (1, 2) window over the (B, C, 1, W) layout the blocks use.
POOL_2D = dict(kernel_size=(1, 2), stride=(1, 2), padding=(0, 1))


def _conv_len(length: int, kernel: int, pad: int) -> int:
    return length + 2 * pad - kernel + 1


def _pool_len(length: int) -> int:
    return (length + 2 * POOL["padding"] - POOL["kernel_size"]) // POOL["stride"] + 1


def feature_length(window: int, kernel: int) -> int:
    """Length L after block 3 (W=64, k=8 -> 10; W=32, k=4 -> 6; W=256, k=4 -> 34)."""
    n = _pool_len(_conv_len(window, kernel, kernel // 2))
    n = _pool_len(_conv_len(n, HIDDEN_KERNEL, HIDDEN_KERNEL // 2))
    return _pool_len(_conv_len(n, HIDDEN_KERNEL, HIDDEN_KERNEL // 2))


class SeededDropout(nn.Module):
    """Dropout drawing from the model's own generator instead of torch's global one.

    Several series train at once in one process (a thread-pool task runner); with the global
    generator their draws would interleave and the same seed would not give the same model.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty_like(x).bernoulli_(keep, generator=self.generator)
        return x * mask / keep


def _block(c_in: int, c_out: int, kernel: int, dropout: float | None) -> nn.Sequential:
    """Conv -> BN -> ReLU -> MaxPool(2, 2, pad 1) [-> Dropout], as METHOD.md section 4 lists it.

    Written as 1 x k 2-D convolutions over a (B, C, 1, W) tensor: the same arithmetic as Conv1d,
    but oneDNN's 2-D kernels train this network ~1.6x faster on CPU (bench/bench_train.py).
    Pooling comes before the ReLU: max and ReLU commute (ReLU is monotone, padding is -inf),
    so the output is identical and the ReLU touches half as many values.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, (1, kernel), padding=(0, kernel // 2), bias=False),
        nn.BatchNorm2d(c_out),
        nn.MaxPool2d(**POOL_2D),
        nn.ReLU(inplace=True),
    ]
    if dropout is not None:
        layers.append(SeededDropout(dropout))
    return nn.Sequential(*layers)


class TCN(nn.Module):
    """Three conv blocks and an MLP projector to two logits (normal, anomalous).

    ``forward(x, mix=...)`` applies mixup at one layer: 0 mixes the inputs, 1-3 the
    output of block 1-3. Inputs are ``(B, W, C)`` (time-major, as windows are stored).
    """

    def __init__(self, n_channels: int, window: int, kernel: int, features: int, dropout: float):
        super().__init__()
        self.blocks = nn.ModuleList(
            [
                _block(n_channels, BLOCK1_WIDTH, kernel, dropout),
                _block(BLOCK1_WIDTH, BLOCK2_WIDTH, HIDDEN_KERNEL, None),
                _block(BLOCK2_WIDTH, features, HIDDEN_KERNEL, None),
            ]
        )
        flat = features * feature_length(window, kernel)
        self.head = nn.Sequential(
            nn.Linear(flat, flat // 2),
            nn.BatchNorm1d(flat // 2),
            nn.ReLU(inplace=True),
            nn.Linear(flat // 2, 2),
        )

    def set_generator(self, generator: torch.Generator) -> None:
        """Route every random draw of the network (dropout) through ``generator``."""
        for m in self.modules():
            if isinstance(m, SeededDropout):
                m.generator = generator

    def block_features(
        self,
        x: torch.Tensor,
        mix: tuple[int, float, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Output of block 3, flattened time-major ``(B, L * F)``; ``mix`` as in :meth:`forward`."""
        h = x.transpose(1, 2).unsqueeze(2)  # (B, C, 1, W) for the 1 x k convolutions
        if mix is not None and mix[0] == 0:
            h = _mix(h, mix)
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)
            if mix is not None and mix[0] == i:
                h = _mix(h, mix)
        # time-major flatten (B, L, F) as in the reference implementation
        return h.squeeze(2).transpose(1, 2).flatten(1)

    def forward(
        self,
        x: torch.Tensor,
        mix: tuple[int, float, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, 2)``; ``mix = (layer, lam, perm)`` mixes ``h = lam*h + (1-lam)*h[perm]``."""
        return self.head(self.block_features(x, mix))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features ``(B, flat // 2)``: the projector's hidden units, before the logits."""
        return self.head[:-1](self.block_features(x))


def fuse_for_inference(model: TCN) -> TCN:
    """An evaluation-only copy with each BatchNorm folded into the layer before it.

    Scores equal the unfused network's within float rounding (~1e-7) and scoring runs
    about 1.5-2x faster on CPU; training always uses the unfused model.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    fused = copy.deepcopy(model).eval()
    for block in fused.blocks:
        block[0] = fuse_conv_bn_eval(block[0], block[1])
        block[1] = nn.Identity()
    fused.head[0] = fuse_linear_bn_eval(fused.head[0], fused.head[1])
    fused.head[1] = nn.Identity()
    return fused


def _mix(h: torch.Tensor, mix: tuple[int, float, torch.Tensor]) -> torch.Tensor:
    _, lam, perm = mix
    return lam * h + (1.0 - lam) * h[perm]


def soft_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE of ``p = softmax(logits)[:, 1]`` against soft labels ``y`` (paper Eq. 11), stably."""
    logp = torch.log_softmax(logits, dim=1)
    return -(y * logp[:, 1] + (1.0 - y) * logp[:, 0]).mean()
