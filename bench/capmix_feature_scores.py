"""Study behind ``window_score: gde``: one CAPMix fit per UCR series, scored seven ways (archive rule).

    OMP_NUM_THREADS=1 python bench/capmix_feature_scores.py --out DIR --ids 1 5 9 ...   # one process per shard
    python bench/capmix_feature_scores.py --out DIR --report

Each series is fitted once with the library defaults and the paper's classifier score (seed 0); the
test windows are then scored by the classifier's p, by the distance to the nearest training window in
the network's penultimate features, its block-3 features and the raw standardised windows, and by a
Gaussian density of the penultimate / block-3 features (a small fixed ridge here; the library's
``window_score: gde`` uses Ledoit-Wolf and the training split only). Rank, z-sum and z-max
combinations of the classifier and the density are scored from the saved arrays. One JSON and one
``.npz`` per series under ``--out``; reruns skip series done (resume).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capmix import build_detector  # noqa: E402
from capmix.atomic import atomic_file  # noqa: E402
from capmix.data.loaders import load_ucr  # noqa: E402
from capmix.evaluation.thresholds import ucr_archive_hit  # noqa: E402
from capmix.windows import point_scores, sliding_windows  # noqa: E402

MAX_REFERENCE = 20_000  # nearest-neighbour reference windows (evenly thinned beyond this)
RIDGE = 1e-3  # the study's covariance ridge, as a fraction of the mean feature variance
BATCH = 2048


def features(det, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(penultimate, block-3 flattened) features of ``windows`` under the fitted network."""
    m = det._scorer()
    pen, flat = [], []
    with torch.inference_mode():
        for i in range(0, len(windows), BATCH):
            f = m.block_features(torch.as_tensor(np.ascontiguousarray(windows[i:i + BATCH]), dtype=torch.float32))
            flat.append(f.numpy())
            pen.append(m.head[:-1](f).numpy())
    return np.concatenate(pen), np.concatenate(flat)


def nearest(ref: np.ndarray, query: np.ndarray) -> np.ndarray:
    r = torch.as_tensor(ref[:: max(1, len(ref) // MAX_REFERENCE)], dtype=torch.float32)
    return np.concatenate([torch.cdist(torch.as_tensor(query[i:i + 4096], dtype=torch.float32), r).min(1).values.numpy()
                           for i in range(0, len(query), 4096)])


def density(ref: np.ndarray, query: np.ndarray) -> np.ndarray:
    mu = ref.mean(0)
    cov = np.atleast_2d(np.cov(ref - mu, rowvar=False))
    cov[np.diag_indices_from(cov)] += RIDGE * np.trace(cov) / cov.shape[0] + 1e-6
    d = query - mu
    return np.einsum("ij,jk,ik->i", d, np.linalg.inv(cov), d)


def robust_z(v: np.ndarray) -> np.ndarray:
    med = np.median(v)
    return (v - med) / (np.median(np.abs(v - med)) + 1e-12)


def run(out: Path, ids: list[int], root: Path) -> None:
    for s in load_ucr(root, ids=ids):
        cell = out / f"{s.name}.json"
        if cell.exists():
            continue
        det = build_detector("capmix", seed=0, window_score="classifier")
        train, test = s.values[: s.train_end], s.values[s.train_end:]
        det.fit(train, s.labels[: s.train_end])
        cfg = det.config
        w_tr = sliding_windows(det.scaler_.transform(train), cfg.window, cfg.stride)
        w_te = sliding_windows(det.scaler_.transform(test), cfg.window, cfg.stride)
        (p_tr, f_tr), (p_te, f_te) = features(det, w_tr), features(det, w_te)
        scores = {"classifier": det._score(w_te), "knn_penultimate": nearest(p_tr, p_te),
                  "knn_block3": nearest(f_tr, f_te), "knn_raw": nearest(w_tr.reshape(len(w_tr), -1), w_te.reshape(len(w_te), -1)),
                  "density_penultimate": density(p_tr, p_te), "density_block3": density(f_tr, f_te)}
        with atomic_file(out / f"{s.name}.npz", suffix=".npz") as tmp:
            np.savez_compressed(tmp, labels=s.labels[s.train_end:], window=cfg.window, stride=cfg.stride,
                                **{k: np.asarray(v, np.float32) for k, v in scores.items()})
        cell.write_text(json.dumps({"series": s.name}))
        print(s.name, flush=True)


def report(out: Path) -> str:
    hits: dict[str, int] = {}
    files = sorted(out.glob("*.npz"))
    for f in files:
        z = np.load(f)
        y, W, S = z["labels"], int(z["window"]), int(z["stride"])
        c, g = z["classifier"].astype(np.float64), z["density_penultimate"].astype(np.float64)
        cands = {k: z[k].astype(np.float64) for k in z.files if k not in ("labels", "window", "stride")}
        cands |= {"rank sum (classifier, density)": rankdata(c) + rankdata(g),
                  "robust-z sum": robust_z(c) + robust_z(g), "robust-z max": np.maximum(robust_z(c), robust_z(g))}
        for k, v in cands.items():
            hits[k] = hits.get(k, 0) + bool(ucr_archive_hit(point_scores(v, len(y), W, S), y).hit)
    return "\n".join([f"| window score | hits of {len(files)} |", "|---|---|"] + [f"| {k} | {v} |" for k, v in hits.items()])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--ids", type=int, nargs="*", default=list(range(1, 80, 2)), help="UCR archive numbers (default: odd 001-079)")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        torch.set_num_threads(1)
        run(args.out, args.ids, args.root)
    print(report(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
