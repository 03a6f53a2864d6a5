"""The CAPMix TCN with dual-space (input + hidden) mixup (METHOD.md section 4)."""

from __future__ import annotations

import torch
from torch import nn

#: Block 2 and 3 convolution settings and block widths of the reference architecture.
HIDDEN_KERNEL = 8
BLOCK1_WIDTH = 32
BLOCK2_WIDTH = 64
POOL = dict(kernel_size=2, stride=2, padding=1)


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
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
        nn.MaxPool1d(**POOL),
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

    def forward(
        self,
        x: torch.Tensor,
        mix: tuple[int, float, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits ``(B, 2)``; ``mix = (layer, lam, perm)`` mixes ``h = lam*h + (1-lam)*h[perm]``."""
        h = x.transpose(1, 2)  # (B, C, W) for Conv1d
        if mix is not None and mix[0] == 0:
            h = _mix(h, mix)
        for i, block in enumerate(self.blocks, start=1):
            h = block(h)
            if mix is not None and mix[0] == i:
                h = _mix(h, mix)
        # time-major flatten (B, L, F) as in the reference implementation
        return self.head(h.transpose(1, 2).flatten(1))


def _mix(h: torch.Tensor, mix: tuple[int, float, torch.Tensor]) -> torch.Tensor:
    _, lam, perm = mix
    return lam * h + (1.0 - lam) * h[perm]


def soft_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE of ``p = softmax(logits)[:, 1]`` against soft labels ``y`` (paper Eq. 11), stably."""
    logp = torch.log_softmax(logits, dim=1)
    return -(y * logp[:, 1] + (1.0 - y) * logp[:, 0]).mean()
