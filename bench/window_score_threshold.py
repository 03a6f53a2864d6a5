"""The deployable threshold under each CAPMix window score (validation vs oracle RPA-F1, AUC-PR).

    OMP_NUM_THREADS=1 python bench/window_score_threshold.py default            # params.yaml's data and train config
    OMP_NUM_THREADS=1 python bench/window_score_threshold.py aiops:6 --window-score gde   # 6 evenly spaced KPIs, library defaults

Each series is fitted once per window score; the validation threshold (mean + z std of the held-out
validation windows' scores, ``threshold_z``) is applied to the raw score and to two monotone
transforms of it (square root, log), which leave the ranking (oracle, AUC-PR) unchanged and move
only the deployable threshold. Metrics are summarised as the pipeline's evaluate stage does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capmix import build_detector, load_params  # noqa: E402
from capmix.data.loaders import load_dataset  # noqa: E402
from capmix.evaluation.evaluate import evaluate_series  # noqa: E402
from capmix.evaluation.thresholds import validation_threshold  # noqa: E402
from capmix.pipeline import load_series, summarise  # noqa: E402

TRANSFORMS = {"raw": lambda v: v, "sqrt": np.sqrt, "log": lambda v: np.log(np.maximum(v, 1e-12))}
COLUMNS = ["validation_rpa_f1", "oracle_rpa_f1", "auc_pr",
           "window/validation/rpa_precision_micro", "window/validation/rpa_recall_micro"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="'default' (params.yaml's dataset and train config) or NAME:K (K evenly spaced series)")
    ap.add_argument("--window-score", nargs="+", default=["classifier", "gde"], choices=["classifier", "gde"])
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "datasets")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    if args.data == "default":
        series = load_series(params.dataset)
        def make(ws):
            return build_detector("capmix", params, window_score=ws)
    else:
        name, k = args.data.split(":")
        every = load_dataset(name, args.root)
        series = [every[i] for i in np.linspace(0, len(every) - 1, int(k)).round().astype(int)]
        def make(ws):
            return build_detector("capmix", seed=0, window_score=ws)
    print("| window score | threshold on | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))
    for ws in args.window_score:
        results = {t: [] for t in TRANSFORMS}
        for s in series:
            (x, y), (xt, yt) = s.train, s.test
            det = make(ws).fit(x, y)
            scores = det.decision_function(xt)
            for t, f in TRANSFORMS.items():
                tau = validation_threshold(f(det.val_scores_), det.config.threshold_z)
                results[t].append(evaluate_series(s.name, f(scores), yt, tau, det.config.window, det.config.stride))
        for t in TRANSFORMS:
            m = summarise(results[t], params.evaluate)
            print(f"| {ws} | {t} | " + " | ".join(f"{100 * m[c]:.2f}" for c in COLUMNS) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
