"""How the deployable threshold's z (mean + z * std of held-out training scores) moves validation RPA-F1.

    OMP_NUM_THREADS=1 python bench/threshold_study.py --dataset aiops --method ensemble --half odd \
        --max-epochs 20 --seeds 0 --out DIR
    python bench/threshold_study.py --out DIR --report-only [--half even]
    python bench/threshold_study.py --out DIR --report-only --rules [--half even]
    OMP_NUM_THREADS=1 python bench/threshold_study.py ... --members --out DIR   # ensembles: per-member scores too
    python bench/threshold_study.py --out DIR --report-only --weights 0.5 0.6 0.7 [--half even]

Each series is fitted once per seed exactly as ``capmix benchmark`` fits its cell (params, dataset
preset, ``--max-epochs`` reaching CAPMix members); its held-out training scores (``val_scores_``, the
scores the detector's own ``threshold_`` comes from), its test scores and labels are saved, so every
z is evaluated on the same fits. The metric is the harness's: ``evaluate_series`` per series, then
``aggregate``'s event-weighted window RPA-F1 (Eq. 13), i.e. the report's "RPA-F1 validation" column.
z is a knob chosen on the odd half; the even half is reported apart.

``--rules`` reports other label-free rules on the same fits instead of the z grid: high quantiles
of the held-out scores, a robust median + k * MAD rule (the held-out tail of a series with labelled
anomalies in its training part holds some of them), and peaks-over-threshold (Siffer et al., KDD
2017: a generalised Pareto fitted to the excesses over the 98th percentile, extrapolated to a risk q).

``--weights`` scores w * member0 + (1 - w) * member1 of a two-member ensemble mean (fits saved with
``--members``) at each w, thresholded by the shipped rule on the same weighting of the held-out tail:
how ``member_weights`` was chosen for ``ensemble_presets.aiops``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capmix.atomic import atomic_file  # noqa: E402
from capmix.config import load_params  # noqa: E402
from capmix.detectors.base import as_series  # noqa: E402
from capmix.detectors.registry import build_detector  # noqa: E402
from capmix.evaluation.benchmark import DatasetSpec, _budget_overrides, load_benchmark_dataset  # noqa: E402
from capmix.evaluation.evaluate import aggregate, evaluate_series  # noqa: E402
from capmix.evaluation.thresholds import validation_threshold  # noqa: E402

Z_GRID = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0)
KEY = "window/validation/rpa_f1_eq13"
ORACLE, AUC_PR = "window/oracle/rpa_f1_eq13", "window/auc_pr_mean"


def pot_threshold(val: np.ndarray, risk: float, initial: float = 0.98) -> float:
    """Peaks-over-threshold: the level exceeded with probability ``risk`` under a generalised Pareto
    fitted (location 0) to the excesses over the ``initial`` quantile; the maximum when too few."""
    from scipy.stats import genpareto

    t = float(np.quantile(val, initial))
    excess = val[val > t] - t
    if len(excess) < 10:  # a GPD fit on a handful of points says nothing
        return float(val.max())
    shape, _, scale = genpareto.fit(excess, floc=0)
    ratio = risk * len(val) / len(excess)
    if abs(shape) < 1e-6:  # the exponential limit
        return t - scale * float(np.log(ratio))
    return t + scale / shape * (ratio ** -shape - 1)


def mad_threshold(val: np.ndarray, k: float) -> float:
    med = float(np.median(val))
    return med + k * 1.4826 * float(np.median(np.abs(val - med)))


def z_rules(zs) -> dict:
    """The shipped rule, mean + z * std of the held-out scores, at each z."""
    return {f"z={z:g}": (lambda v, z=z: validation_threshold(v, z)) for z in zs}


RULES = z_rules((2.0, 3.0, 4.0))
RULES |= {f"q{q:g}": (lambda v, q=q: float(np.quantile(v, q))) for q in (0.99, 0.995, 0.999)}
RULES["max"] = lambda v: float(np.max(v))
RULES |= {f"med+{k:g}MAD": (lambda v, k=k: mad_threshold(v, k)) for k in (5.0, 8.0, 12.0)}
RULES |= {f"POT q={q:g}": (lambda v, q=q: pot_threshold(v, q)) for q in (1e-2, 1e-3, 1e-4)}


def fit_all(args: argparse.Namespace, params: dict, spec: DatasetSpec, series: list) -> None:
    for seed in args.seeds:
        for s in series:
            path = args.out / f"seed{seed}" / f"{s.name}.npz"
            if path.exists():
                continue
            det = build_detector(args.method, params, preset=spec.preset, seed=seed,
                                 **_budget_overrides(args.method, params, spec.preset, seed, args.max_epochs))
            (x_tr, y_tr), (x_te, y_te) = s.train, s.test
            t0 = time.perf_counter()
            det.fit(x_tr, y_tr)
            scores = det.decision_function(x_te)
            cfg = det.config
            extra = member_arrays(det, x_tr, x_te) if args.members else {}
            with atomic_file(path, suffix=".npz") as tmp:  # a half-written file is never taken for a fit
                np.savez(tmp, val=np.asarray(det.val_scores_, np.float64), scores=scores.astype(np.float64),
                         labels=y_te.astype(np.int8), window=cfg.window, stride=cfg.stride,
                         threshold=det.threshold_, **extra)
            print(seed, s.name, f"{time.perf_counter() - t0:.1f}s", flush=True)


def member_arrays(det, x_tr: np.ndarray, x_te: np.ndarray) -> dict[str, np.ndarray]:
    """An ensemble's per-member scores (robust z on its member scale, as its mean averages them) of
    the test part and of the held-out training tail its threshold comes from (the split ``fit`` uses),
    so member weights can be scored on the same fits (``--weights``)."""
    split = det._validation_split(len(x_tr))
    test = det._member_candidates(as_series(x_te))
    tail = det._member_candidates(as_series(x_tr)[split:])
    return {"member_names": np.array([k for k, *_ in test]),
            "member_scores": np.stack([s for _, _, s, _ in test]),
            "member_val": np.stack([s for _, _, s, _ in tail])}


def weights_report(out: Path, half: str, names: set[str], weights: list[float], z: float = 3.0) -> str:
    """Validation and oracle RPA-F1 and AUC-PR of w * member0 + (1 - w) * member1 (saved by
    ``--members``), thresholded by the shipped rule on the same weighting of the held-out tail."""
    lines = [f"member weight w of the first member, threshold mean + {z:g} std, half={half}",
             "| w | validation per seed | validation | oracle | AUC-PR |", "|---|---|---|---|---|"]
    fits_by_seed = [[(f.stem, dict(np.load(f))) for f in sorted(d.glob("*.npz")) if f.stem in names]
                    for d in sorted(p for p in out.iterdir() if p.is_dir() and p.name.startswith("seed"))]
    for w in weights:
        rows = []
        for fits in fits_by_seed:
            evs = []
            for name, a in fits:
                ms, mv = a["member_scores"], a["member_val"]
                s, v = w * ms[0] + (1 - w) * ms[1], w * mv[0] + (1 - w) * mv[1]
                evs.append(evaluate_series(name, s, a["labels"], validation_threshold(v, z),
                                           int(a["window"]), int(a["stride"])))
            agg = aggregate(evs)
            rows.append([100 * agg[KEY], 100 * agg[ORACLE], 100 * agg[AUC_PR]])
        r = np.array(rows)
        lines.append(f"| {w:g} | " + " / ".join(f"{v:.2f}" for v in r[:, 0]) + " | "
                     + " | ".join(f"{m:.2f} ± {sd:.2f}" for m, sd in zip(r.mean(0), r.std(0))) + " |")
    return "\n".join(lines)


def report(out: Path, half: str, names: set[str], rules: dict | None = None) -> str:
    """The z grid (or ``rules``) per seed over the saved fits of ``names`` (the chosen half), then mean ± std."""
    rules = rules or z_rules(Z_GRID)
    lines = [f"validation RPA-F1 (window, Eq. 13) in %, half={half}", "| seed | series | "
             + " | ".join(rules) + " | oracle | AUC-PR |", "|---|---|" + "---|" * (len(rules) + 2)]
    per_seed = []
    for d in sorted(p for p in out.iterdir() if p.is_dir() and p.name.startswith("seed")):
        fits = [(f.stem, dict(np.load(f)))  # arrays read once, not once per z
                for f in sorted(d.glob("*.npz")) if f.stem in names]
        if not fits:
            continue
        row, agg = [], {}
        for rule in rules.values():
            agg = aggregate([evaluate_series(name, a["scores"], a["labels"], rule(a["val"]),
                                             int(a["window"]), int(a["stride"])) for name, a in fits])
            row.append(100 * agg[KEY])
        row += [100 * agg[ORACLE], 100 * agg[AUC_PR]]  # neither depends on the threshold
        per_seed.append(row)
        lines.append(f"| {d.name} | {len(fits)} | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    if len(per_seed) > 1:
        m, sd = np.mean(per_seed, axis=0), np.std(per_seed, axis=0)
        lines.append("| mean ± std | | " + " | ".join(f"{a:.2f} ± {b:.2f}" for a, b in zip(m, sd)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--dataset", default="aiops")
    ap.add_argument("--method", default="ensemble")
    ap.add_argument("--half", choices=["odd", "even", "all"], default="odd")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--rules", action="store_true", help="report the other label-free rules, not the z grid")
    ap.add_argument("--members", action="store_true", help="ensembles: also save each member's scores")
    ap.add_argument("--weights", type=float, nargs="+", default=None,
                    help="report w * member0 + (1 - w) * member1 at these w (fits saved with --members)")
    args = ap.parse_args(argv)
    params = load_params(args.params).model_dump()
    spec = DatasetSpec(**params["benchmark"]["datasets"][args.dataset])
    series = load_benchmark_dataset(args.dataset, spec, args.root, None, args.half)  # the harness's halves
    if not args.report_only:
        fit_all(args, params, spec, series)
    names = {s.name for s in series}
    if args.weights:
        print(weights_report(args.out, args.half, names, args.weights))
    else:
        print(report(args.out, args.half, names, RULES if args.rules else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
