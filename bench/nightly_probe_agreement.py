"""Does the nightly flow's label-free criterion pick the same model as real labels would?

When the newest slice has no labels, flows/nightly.py compares champion and challenger on probe
anomalies placed into it (capmix/data/probe.py). This measures that criterion against the real
labels of simulated days (capmix/data/daily.py, params ``simulate`` with other seeds):

for every seed and every day, on the day's newest slice (the last ``holdout_fraction``),
* the decisions the nightly flow faces: yesterday's model (trained on the window before
  yesterday's slice) against today's challenger (the window before today's slice), and one
  detector against another (Isolation Forest, OC-SVM, CAPMix) trained on the same window;
* each pair's AUC-PR difference with the real labels and with probe labels (real anomalies stay in
  the slice, labelled 0, as they would be in unlabelled data).

It prints how often the two criteria pick the same model (all pairs, and the pairs whose real
difference is larger than the promotion margin), and the rank correlation of the differences.

    python bench/nightly_probe_agreement.py --seeds 6           # ~10 min on 2 cores, one thread
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from capmix import build_detector  # noqa: E402
from capmix.data.daily import SimulatedFeed  # noqa: E402
from capmix.data.history import rolling_dataset  # noqa: E402
from capmix.data.probe import ProbeConfig  # noqa: E402
from capmix.params import load_params  # noqa: E402


def _ap(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(average_precision_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--detectors", default="iforest,ocsvm,capmix")
    ap.add_argument("--capmix-epochs", type=int, default=20)
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    p = load_params(args.params)
    cfg, sim = p.nightly, p.simulate
    names = args.detectors.split(",")
    rows = []
    t0 = time.perf_counter()
    for seed in range(100, 100 + args.seeds):
        feed = SimulatedFeed(**{**sim.model_dump(), "seed": seed, "broken_day": None, "repeat_day": None})
        history = feed.history()
        fitted_yesterday: dict[str, object] = {}
        for k in range(1, args.days + 1):
            day = feed.day(k)
            history = pd.concat([history, day], ignore_index=True)
            real, _ = rolling_dataset(history, day, cfg.train_days, cfg.holdout_fraction, 64, ProbeConfig(n=0))
            # the same data without labels: the slice gets probe anomalies, as unlabelled data would
            unlabelled = history.assign(label=pd.array([pd.NA] * len(history), dtype="Int8"))
            probed, source = rolling_dataset(unlabelled, day, cfg.train_days, cfg.holdout_fraction, 64,
                                             ProbeConfig(n=cfg.probe_anomalies, seed=seed * 100 + k))
            assert set(source.values()) == {"probe"}
            fitted_today: dict[str, object] = {}
            for s_real, s_probe in zip(real, probed):
                scores, scores_probe = {}, {}
                for name in names:
                    kw = {"max_epochs": args.capmix_epochs, "min_epochs": 5} if name == "capmix" else {}
                    det = build_detector(name, **kw).fit(s_real.values[:s_real.train_end])
                    fitted_today[(s_real.name, name)] = det
                    scores[name] = det.decision_function(s_real.values)[s_real.train_end:]
                    scores_probe[name] = det.decision_function(s_probe.values)[s_probe.train_end:]
                    old = fitted_yesterday.get((s_real.name, name))
                    if old is not None:
                        scores[f"{name}@yesterday"] = old.decision_function(s_real.values)[s_real.train_end:]
                        scores_probe[f"{name}@yesterday"] = old.decision_function(s_probe.values)[s_probe.train_end:]
                y_real = s_real.labels[s_real.train_end:]
                y_probe = s_probe.labels[s_probe.train_end:]
                for a, b in itertools.combinations(sorted(scores), 2):
                    same_kind = a.split("@")[0] == b.split("@")[0]
                    rows.append({"seed": seed, "day": k, "series": s_real.name, "a": a, "b": b,
                                 "pair": "yesterday vs today" if same_kind else "detector vs detector",
                                 "real": _ap(y_real, scores[a]) - _ap(y_real, scores[b]),
                                 "probe": _ap(y_probe, scores_probe[a]) - _ap(y_probe, scores_probe[b])})
            fitted_yesterday = fitted_today
        print(f"seed {seed} done ({time.perf_counter() - t0:.0f}s)", flush=True)
    df = pd.DataFrame(rows).dropna()
    out = Path("reports/bench")
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "nightly_probe_agreement.csv", index=False)
    margin = cfg.margin
    print(f"\n{len(df)} decisions, {args.seeds} seeds x {args.days} days x {sim.series} series; margin {margin}")
    print("| pairs | n | same pick | same pick where |real diff| > margin | Spearman of the differences |")
    print("|---|---:|---:|---:|---:|")
    for label, part in [("all", df), *df.groupby("pair")]:
        clear = part[part["real"].abs() > margin]
        same = float(np.mean(np.sign(part["real"]) == np.sign(part["probe"])))
        same_clear = float(np.mean(np.sign(clear["real"]) == np.sign(clear["probe"]))) if len(clear) else float("nan")
        rho = spearmanr(part["real"], part["probe"]).statistic if len(part) > 2 else float("nan")
        print(f"| {label} | {len(part)} | {same:.0%} | {same_clear:.0%} (n={len(clear)}) | {rho:.2f} |")


if __name__ == "__main__":
    main()
