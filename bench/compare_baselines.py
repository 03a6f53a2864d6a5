"""CAPMix and its ablations vs the reference detectors on the configured dataset (default: the embedded one).

    python bench/compare_baselines.py [--seeds 0 1 2] [--methods capmix cap iforest random]

Prints Eq. 13 RPA-F1 under both threshold protocols and mean AUCs (window granularity), mean ± std over seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from capmix.baselines import RandomScorer, WindowIForest
from capmix.config import detector_config, load_params
from capmix.detector import CAPMixDetector
from capmix.evaluation import aggregate, evaluate_series
from capmix.pipeline import DatasetConfig, load_series

VARIANTS = ("capmix", "cap", "cap-gamma", "cap-mix")


def make(method: str, cfg, seed: int):
    if method in VARIANTS:
        return CAPMixDetector(cfg.replace(variant=method, seed=seed))
    if method == "iforest":
        return WindowIForest(cfg.window, cfg.stride, seed=seed)
    if method == "random":
        return RandomScorer(seed=seed)
    raise SystemExit(f"unknown method {method!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["capmix", "cap", "iforest", "random"])
    args = ap.parse_args()
    p = load_params(args.params)
    cfg = detector_config(p)
    series = load_series(DatasetConfig.model_validate(p.get("dataset", {})))
    keys = {"validation RPA-F1": "window/validation/rpa_f1_eq13", "oracle RPA-F1": "window/oracle/rpa_f1_eq13",
            "AUC-PR": "window/auc_pr_mean", "AUC-ROC": "window/auc_roc_mean"}
    print(f"| method | {' | '.join(keys)} | seconds |")
    print("|---" * (len(keys) + 2) + "|")
    for m in args.methods:
        vals, t0 = {k: [] for k in keys}, time.perf_counter()
        for seed in args.seeds:
            res = []
            for s in series:
                det = make(m, cfg, seed).fit(*s.train)
                res.append(evaluate_series(s.name, det.decision_function(s.test[0]), s.test[1],
                                           getattr(det, "threshold_", np.inf), cfg.window, cfg.stride))
            agg = aggregate(res)
            for k, key in keys.items():
                vals[k].append(agg[key])
        cells = " | ".join(f"{np.mean(v):.3f} ± {np.std(v):.3f}" for v in vals.values())
        print(f"| {m} | {cells} | {time.perf_counter() - t0:.0f} |")


if __name__ == "__main__":
    main()
