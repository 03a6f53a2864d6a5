"""How the library's DEFAULT detectors do on data from sources other than UCR (AUC-PR, point level).

    OMP_NUM_THREADS=1 python bench/default_detectors.py --out /tmp/defaults \
        --methods capmix capmix-reference iforest ensemble --datasets nab aiops smd --per-dataset 8

A user builds ``build_detector(name)`` with no params.yaml and no preset, fits it on the training
part (with its labels where the dataset has them, as the pipeline does; ``--no-train-labels`` to
fit label-free) and ranks the test part by ``decision_function``. This bench does exactly that on an evenly spaced sample of series of each
dataset and reports the mean AUC-PR and ROC-AUC of the test part per dataset and method.

``capmix`` is the library default (window score ``gde`` since it was measured here: ``capmix``
cells recorded before that hold the classifier score, as ``capmix-classifier`` gives it now).
``capmix-reference`` is ``CAPMixDetector`` with the optimisation settings it had before the
defaults were changed to train to convergence (lr 3e-4, at most 50 epochs, patience 5): the same
data, the same seed, so the two rows are paired. One JSON per (dataset, series, method) cell
under ``--out``; reruns skip cells that exist (resume).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capmix import build_detector  # noqa: E402
from capmix.data.loaders import load_dataset  # noqa: E402
from capmix.evaluation.metrics import auc_scores  # noqa: E402
from capmix.evaluation.thresholds import ucr_archive_hit  # noqa: E402

# the optimisation defaults of CAPMixDetector before this bench's change (DetectorConfig history)
REFERENCE = {"lr": 3e-4, "max_epochs": 50, "patience": 5, "min_epochs": 5, "window_score": "classifier"}
METHODS = {
    "capmix": ("capmix", {}),
    "capmix-reference": ("capmix", REFERENCE),
    # Table IV's ablation without the DTW revision and mixup, at the same library defaults
    "cap": ("cap", {}),
    # Table IV's other two ablations: DTW label revision without mixup, and mixup without revision
    "cap-gamma": ("cap-gamma", {}),
    "cap-mix": ("cap-mix", {}),
    # CAPMix alone, fitted with seeds 0 and 1, the restart whose top peak stands out most
    # (bench/capmix_restarts.py evaluates the same rule from two saved capmix runs)
    "capmix-restarts": ("ensemble", {"members": ("capmix",), "fallback_members": ("capmix",), "member_seeds": 2,
                                     "classic": False, "selection": "confidence", "confidence_reference": False}),
    # CAPMix's network scored by the Gaussian density of its penultimate features (CutPaste's GDE,
    # the library default since this bench's runs) and by the paper's classifier p (the default before)
    "capmix-gde": ("capmix", {"window_score": "gde"}),
    "capmix-classifier": ("capmix", {"window_score": "classifier"}),
    "iforest": ("iforest", {}),
    "ocsvm": ("ocsvm", {}),
    # each point's distance from the training mean in training stds (RMS over channels): no model
    "zscore": ("zscore", {}),
    "mp": ("mp", {}),
    # the library default: CAPMix (density), OC-SVM and IForest in the pool and the fallback since the
    # eleventh session (the same as ensemble-all3); ensemble-oi is the default before it
    "ensemble": ("ensemble", {}),
    # the ensemble as shipped before multivariate input was scored on the joint window
    # (bench/ensemble_fallback_study.py): every channel's own choice, combined by the maximum
    "ensemble-per-channel": ("ensemble", {"multivariate": "per_channel"}),
    # the ensemble with the window baselines as its learned members (no CAPMix): cheap to fit
    "ensemble-oi": ("ensemble", {"members": ("ocsvm", "iforest")}),
    # ensemble-oi's two halves: always the most confident candidate / always the members' mean
    "ensemble-oi-conf": ("ensemble", {"members": ("ocsvm", "iforest"), "selection": "confidence"}),
    "ensemble-oi-fallback": ("ensemble", {"members": ("ocsvm", "iforest"), "min_confidence": float("inf")}),
    # CAPMix competes on confidence; the fallback averages the window baselines only
    # the whole-series sweep family (the ucr preset's scheme) under the default auto selection
    "ensemble-sweep": ("ensemble", {"scheme": "sweep"}),
    "ensemble-coi": ("ensemble", {"members": ("capmix", "ocsvm", "iforest"), "fallback_members": ("ocsvm", "iforest")}),
    # CAPMix (density score) joins the pool AND the fallback's mean: the variant bench/ensemble_member_study.py
    # chose for the library default (docs/results.md, fourth round)
    "ensemble-all3": ("ensemble", {"members": ("capmix", "ocsvm", "iforest")}),
    # a trusted pick joins the fallback by the maximum instead of replacing it, and the fallback is
    # OC-SVM alone (IForest still competes on confidence): chosen on seen data, checked on unseen
    "ensemble-combine": ("ensemble", {"members": ("ocsvm", "iforest"), "fallback_members": ("ocsvm",),
                                      "pick_combine": "max"}),
}


def sample(series: list, k: int) -> list:
    """``k`` evenly spaced series (all when there are fewer), in dataset order."""
    if len(series) <= k:
        return series
    return [series[int(i)] for i in np.linspace(0, len(series) - 1, k).round().astype(int)]


def choose_series(ds: str, k: int, root: Path, holdout: int | None = None, ucr_half: str = "odd") -> list:
    """The series a run scores: ``k`` evenly spaced ones of dataset ``ds`` (UCR: of the chosen half), or,
    with ``holdout``, that many evenly spaced among those the ``k`` leave out."""
    series = load_dataset(ds, root)
    if ds == "ucr":  # knobs are chosen on the odd-numbered series; the even half is reported apart
        series = [x for x in series if int(x.name.split("_")[0]) % 2 == (ucr_half == "odd")]
    chosen = sample(series, k)
    if holdout is not None:  # the series the sample left out (none of them shaped a default)
        picked = {x.name for x in chosen}
        chosen = sample([x for x in series if x.name not in picked], holdout)
    return chosen


def classifier_scores(det, test: np.ndarray, train: np.ndarray) -> dict:
    """A ``gde`` CAPMix's other window score from the same network: the classifier's p on the test
    and training parts (for offline combinations). Without a fitted density CAPMix scores windows by
    the classifier, so it is set aside meanwhile."""
    density, det.density_ = det.density_, None
    try:
        return {"cls_scores": det.decision_function(test).astype(np.float32),
                "cls_train_scores": det.decision_function(train).astype(np.float32)}
    finally:
        det.density_ = density


def run_cell(s, method: str, seed: int, train_labels: bool, ucr: bool = False,
             train_scores: bool = True, with_classifier: bool = False) -> tuple[dict, dict]:
    """The cell's JSON record and its arrays (test scores, labels, the scores of the training part)."""
    name, over = METHODS[method]
    det = build_detector(name, seed=seed, **over)
    t0 = time.perf_counter()
    y_train = s.labels[: s.train_end] if train_labels and s.labels is not None else None
    det.fit(s.values[: s.train_end], y_train)
    scores = det.decision_function(s.values[s.train_end:])
    seconds = time.perf_counter() - t0
    y = s.labels[s.train_end:]
    pr, roc = auc_scores(y, scores)
    extra = {}
    if hasattr(det, "selection_"):  # which candidate each channel chose, and how confidently
        extra["explain"] = [{k: v for k, v in ch.items() if k != "candidates"} | {"candidates": [
            (kind, w, round(q, 4)) for kind, w, q in ch["candidates"]]} for ch in det.selection_]
    if ucr:  # one anomaly per series: the archive's rule (METHOD.md section 6)
        extra["ucr_hit"] = bool(ucr_archive_hit(scores, y).hit)
    both = with_classifier and getattr(det, "density_", None) is not None  # gde: also the classifier's scores
    on_train = (det.decision_function(s.values[: s.train_end]) if (train_scores and not ucr) or both
                else np.zeros(0))  # for offline combination studies
    arrays = {"scores": scores.astype(np.float32), "train_scores": on_train.astype(np.float32),
              "labels": y.astype(np.int8)}
    if both:
        arrays |= classifier_scores(det, s.values[s.train_end:], s.values[: s.train_end])
    return {"series": s.name, "method": method, "auc_pr": pr, "auc_roc": roc,
            "epochs": getattr(det, "best_epoch_", None), "seconds": round(seconds, 2),
            "test_points": int(y.shape[0]), "anomaly_share": float(y.mean()), **extra}, arrays


def report(out: Path, datasets: list[str], methods: list[str]) -> str:
    lines = ["| dataset | series | " + " | ".join(methods) + " |", "|---|---|" + "---|" * len(methods)]
    for ds in datasets:
        cells = {m: [c for c in (json.loads(p.read_text()) for p in sorted((out / ds / m).glob("*.json")))
                     if "error" not in c] for m in methods}
        names = set.intersection(*[{c["series"] for c in v} for v in cells.values()]) if cells else set()
        key = "ucr_hit" if ds == "ucr" else "auc_pr"  # UCR: archive-rule accuracy, else AUC-PR
        row = [f"{100 * np.mean([c[key] for c in cells[m] if c['series'] in names]):.2f}"
               if names else "–" for m in methods]
        lines.append(f"| {ds} | {len(names)} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--datasets", nargs="+", default=["nab", "aiops", "smd"])
    ap.add_argument("--methods", nargs="+", default=["capmix", "capmix-reference", "iforest", "ensemble"],
                    choices=sorted(METHODS))
    ap.add_argument("--per-dataset", type=int, nargs="+", default=[8],
                    help="evenly spaced series per dataset (one number, or one per --datasets entry)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-train-labels", dest="train_labels", action="store_false",
                    help="fit without the training part's labels (by default they are passed, as the "
                         "pipeline does; only CAPMix uses them, as known anomalies)")
    ap.add_argument("--no-train-scores", dest="train_scores", action="store_false",
                    help="do not also score the training part (it doubles the cost of a cell)")
    ap.add_argument("--with-classifier", action="store_true",
                    help="gde CAPMix cells also save the classifier's scores of the same network and both "
                         "scores of the training part (cls_scores, cls_train_scores, train_scores)")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--ucr-half", choices=["odd", "even"], default="odd", help="UCR: which half to run")
    ap.add_argument("--holdout", type=int, default=None,
                    help="run N evenly spaced series among those --per-dataset does NOT pick (a hold-out check)")
    ap.add_argument("--shard", default="0/1", help="I/N: run every N-th chosen series from the I-th (parallel processes)")
    args = ap.parse_args(argv)
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    if not args.report_only:
        counts = args.per_dataset * len(args.datasets) if len(args.per_dataset) == 1 else args.per_dataset
        for ds, k in zip(args.datasets, counts):
            chosen = choose_series(ds, k, args.root, args.holdout, args.ucr_half)
            for s in chosen[shard::n_shards]:
                if not s.labels[s.train_end:].any():  # AUC-PR is undefined without a test anomaly
                    print(f"{ds:6s} skipped {s.name}: no anomaly in its test part", flush=True)
                    continue
                for m in args.methods:
                    target = args.out / ds / m / (s.name.replace("/", "__") + ".json")
                    if target.exists():
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        cell, arrays = run_cell(s, m, args.seed, args.train_labels, ucr=ds == "ucr",
                                               train_scores=args.train_scores,
                                               with_classifier=args.with_classifier)
                    except ValueError as exc:  # e.g. a training part too short for the detector
                        target.write_text(json.dumps({"series": s.name, "method": m, "error": str(exc)}))
                        print(f"{ds:6s} {m:17s} failed: {exc}", flush=True)
                        continue
                    np.savez_compressed(target.with_suffix(".npz"), **arrays)
                    target.write_text(json.dumps(cell))
                    print(f"{ds:6s} {m:17s} {cell['auc_pr']:.3f} {cell['seconds']:7.1f}s {s.name}", flush=True)
    print(report(args.out, args.datasets, args.methods))
    return 0


if __name__ == "__main__":
    sys.exit(main())
