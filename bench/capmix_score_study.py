"""Label-free ways to use one CAPMix network's scores on UCR, judged by the archive's rule.

    OMP_NUM_THREADS=1 python bench/default_detectors.py --out DIR --datasets ucr --per-dataset 125 \
        --ucr-half odd --seed 1 --methods capmix-gde --no-train-scores --with-classifier [--shard I/2]
    python bench/capmix_score_study.py DIR [--root ../shared/datasets]

Reads the saved cells (the density's and the classifier's point scores of the same fitted network,
on the test and the training part) and counts archive-rule hits for:

* combinations of the two scores: robust or plain z-scores against the training part, summed or
  maximised; the rank mean over the test part; the score whose top peak is the more confident;
* post-processing of the density alone: a centred rolling mean over a multiple of the period, or
  the score minus a rolling median over many periods (the period estimated on the training part).
  Monotone transforms cannot move the top location, so only such local ones can change a hit;
* where the misses' top peaks lie: near the test part's edges, or among several stretches that
  outscore the anomaly.

Nothing here sees the test labels except the hit count itself; a choice is made on the odd half.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capmix.data.loaders import load_dataset  # noqa: E402
from capmix.detectors.classic import robust_z  # noqa: E402
from capmix.detectors.confidence import peak_confidence  # noqa: E402
from capmix.detectors.period import estimate_period  # noqa: E402
from capmix.evaluation.thresholds import ucr_archive_hit  # noqa: E402

EDGE = 0.02  # share of the test part counted as its start or end


def plain_z(s: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (s - ref.mean()) / (ref.std() + 1e-12)


def rolling(s: np.ndarray, width: float, how: str) -> np.ndarray:
    r = pd.Series(s).rolling(max(1, int(width)), center=True, min_periods=1)
    return (r.mean() if how == "mean" else r.median()).to_numpy()


def candidates(a: dict, period: int) -> dict[str, np.ndarray]:
    g, c = a["scores"].astype(np.float64), a["cls_scores"].astype(np.float64)
    gt, ct = a["train_scores"].astype(np.float64), a["cls_train_scores"].astype(np.float64)
    excl = max(1, len(g) // 100)

    def more_confident(ref: bool) -> np.ndarray:
        cg = peak_confidence(g, excl, gt if ref else None)
        return g if cg >= peak_confidence(c, excl, ct if ref else None) else c

    out = {
        "density (gde)": g,
        "classifier": c,
        "robust-z sum": robust_z(g, gt) + robust_z(c, ct),
        "z sum": plain_z(g, gt) + plain_z(c, ct),
        "z sum, log density": plain_z(np.log(np.maximum(g, 1e-9)), np.log(np.maximum(gt, 1e-9))) + plain_z(c, ct),
        "robust-z maximum": np.maximum(robust_z(g, gt), robust_z(c, ct)),
        "rank mean (test part)": (np.argsort(np.argsort(g)) + np.argsort(np.argsort(c))) / len(g),
        "more confident peak": more_confident(False),
        "more confident peak, training reference": more_confident(True),
    }
    for k in (0.5, 1, 2):
        out[f"density, mean over {k:g} period"] = rolling(g, k * period, "mean")
    for k in (10, 30):
        out[f"density - median over {k} periods"] = g - rolling(g, max(3, k * period), "median")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="a default_detectors.py --with-classifier output folder")
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = ap.parse_args(argv)
    cells = [f for f in sorted(args.out.rglob("*.npz")) if "cls_scores" in np.load(f).files]
    if not cells:
        raise SystemExit(f"no --with-classifier cells under {args.out}")
    train = {s.name: s.values[: s.train_end] for s in load_dataset("ucr", args.root)}
    hits: dict[str, int] = {}
    edge = several = 0
    for f in cells:
        a = dict(np.load(f))
        period = estimate_period(train[f.stem]) or 64  # no period found: a fixed width
        for name, s in candidates(a, period).items():
            hits[name] = hits.get(name, 0) + ucr_archive_hit(s, a["labels"]).hit
        g, y = a["scores"].astype(np.float64), a["labels"]
        result = ucr_archive_hit(g, y)
        if not result.hit:
            anomalous = np.flatnonzero(y)
            own = g[max(0, anomalous[0] - 100): anomalous[-1] + 101].max()
            above = np.flatnonzero(g > own)
            edge += result.location is not None and not EDGE * len(g) <= result.location <= (1 - EDGE) * len(g)
            several += bool(above.size) and int((np.diff(above) > 200).sum()) >= 1
    print(f"{len(cells)} series under {args.out}; archive-rule hits:")
    for name, n in hits.items():
        print(f"  {name:42s} {n:4d}  {100 * n / len(cells):5.1f} %")
    misses = len(cells) - hits["density (gde)"]
    print(f"density misses: {misses}; top within {EDGE:.0%} of an edge: {edge}; "
          f"anomaly outscored by two or more separate stretches: {several}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
