"""Training-set contamination for the robustness study (paper Fig. 5).

``contaminate(x, y, factor)`` pastes ``round(factor * n_runs)`` extra copies of the series'
own labelled anomaly runs into normal stretches of the training period, *unlabelled*: the
detector sees them as normal data, which is exactly the pollution a nightly retraining on
raw production data suffers. The labels of the original anomalies are left as they are.
Each copy is shifted to the local level of the place it lands (its first value matches
the point it replaces), so it is the anomaly's shape that pollutes, not a level jump.
"""

from __future__ import annotations

import numpy as np

from capmix.evaluation.metrics import anomalous_runs


def contaminate(x: np.ndarray, y: np.ndarray | None, factor: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Return (contaminated x, unchanged y, bool mask of the pasted points).

    Raises ``ValueError`` when the training period has no labelled anomaly to copy.
    """
    if factor < 0:
        raise ValueError(f"contamination factor must be >= 0, got {factor}")
    x = np.array(x, dtype=np.float64, copy=True)
    if x.ndim == 1:
        x = x[:, None]
    mask = np.zeros(x.shape[0], dtype=bool)
    if y is None or not np.any(y):
        raise ValueError("contamination copies the training period's labelled anomalies, but it has none; "
                         "use a dataset with labelled training anomalies (e.g. AIOps)")
    taken = np.asarray(y).astype(bool).copy()
    starts, ends = anomalous_runs(taken)
    n_copies = int(round(factor * len(starts)))
    for _ in range(n_copies):
        k = rng.integers(len(starts))
        a, b = int(starts[k]), int(ends[k])
        length = b - a
        # a landing spot of normal points not yet used (no overlap with anomalies or other copies)
        for _attempt in range(50):
            pos = int(rng.integers(0, x.shape[0] - length + 1))
            if not taken[pos:pos + length].any():
                break
        else:
            continue  # the series is too full; fewer copies rather than overlapping ones
        segment = x[a:b] - x[a] + x[pos]
        x[pos:pos + length] = segment
        taken[pos:pos + length] = True
        mask[pos:pos + length] = True
    return x, y, mask
