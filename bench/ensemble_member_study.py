"""Which learned members the library's default ensemble should average, now that CAPMix scores windows
by the Gaussian density of its features (``window_score: gde``).

    OMP_NUM_THREADS=1 python bench/ensemble_member_study.py --out DIR --datasets nab aiops asd \
        --per-dataset 10 6 4 --holdout 1000 --shard 0/2
    OMP_NUM_THREADS=1 python bench/ensemble_member_study.py --out DIR --datasets merlion aiops-prelim \
        --per-dataset 1000 --shard 0/2
    python bench/ensemble_member_study.py --out DIR --datasets nab aiops asd merlion aiops-prelim --report-only

Each series is fitted ONCE, as an ensemble whose members are CAPMix, OC-SVM, Isolation Forest and the z-score
(library defaults, seed 0, training labels passed as the pipeline does); every variant below is then
scored from that one fit by changing only settings that ``fit`` does not read (members left out of
the pool, the fallback's members, the selection), so the variants differ in the rule and nothing else:

* ``shipped``: the library default until the eleventh session (members OC-SVM and IForest, ``auto`` over
  the period-tied classic candidates, fallback their mean); it must reproduce ``bench/default_detectors.py``'s
  ``ensemble-oi`` cells;
* ``all3``: CAPMix joins, and the fallback averages all three members (the library default since);
* ``capmix+ocsvm``: CAPMix joins, the fallback averages CAPMix and OC-SVM (IForest competes on confidence);
* ``mean3``, ``mean2``: no classic candidates, the plain mean of the three / of CAPMix and OC-SVM;
* ``capmix``: CAPMix alone (its robust z, the same ranking as ``capmix`` in ``default_detectors.py``);
* ``all4``, ``zpool`` (fourteenth session): the point z-score (``zscore``) also in the pool and the
  fallback / in the pool only, competing on confidence. The fit holds all four members since then;
  every other variant leaves the z-score out, so it scores as before.

The series are chosen as ``bench/default_detectors.py`` chooses them (``--per-dataset``, ``--holdout``).
Point AUC-PR of the test part (UCR: also the archive rule's hit, and the report gives the accuracy),
one JSON per series under ``--out``; reruns skip finished series. A UCR report covers the series run,
so run one half per ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import capmix.detectors.ensemble as ens  # noqa: E402
from capmix import build_detector  # noqa: E402
from capmix.evaluation.metrics import auc_scores  # noqa: E402
from capmix.evaluation.thresholds import ucr_archive_hit  # noqa: E402
from default_detectors import choose_series  # noqa: E402

MEMBERS = ("capmix", "ocsvm", "iforest", "zscore")
ALL3 = ("capmix", "ocsvm", "iforest")
VARIANTS = {
    "shipped": (("ocsvm", "iforest"), {}),
    "all3": (ALL3, {}),
    "capmix+ocsvm": (ALL3, {"fallback_members": ("capmix", "ocsvm")}),
    "mean3": (ALL3, {"classic": False, "selection": "mean"}),
    # the point z-score (fourteenth session): in the pool and the fallback / in the pool only
    "all4": (MEMBERS, {}),
    "zpool": (MEMBERS, {"fallback_members": ALL3}),
    "mean2": (("capmix", "ocsvm"), {"classic": False, "selection": "mean"}),
    "capmix": (("capmix",), {"classic": False, "selection": "mean"}),
}

_candidate_scores = ens.candidate_scores
_cache: dict[str, list] = {}


def _cached_candidate_scores(ref, x, period, **kw):
    """The classic candidates depend on the data and the period only: computed once per channel
    and shared by the variants that use them."""
    h = hashlib.blake2b(digest_size=16)
    for a in (ref, x):
        h.update(np.ascontiguousarray(a).tobytes())
    key = f"{h.hexdigest()}/{period}/{sorted(kw.items())}"
    if key not in _cache:
        _cache[key] = list(_candidate_scores(ref, x, period, **kw))
    return _cache[key]


ens.candidate_scores = _cached_candidate_scores


def variant(det, members: tuple[str, ...], changes: dict):
    """``det`` (fitted with all of MEMBERS) as if fitted with ``members`` and ``changes`` only."""
    sub = copy.copy(det)
    names = det._member_names()
    sub.members_ = [m for m, name in zip(det.members_, names) if name in members]
    sub.config = det.config.replace(members=members, **changes)
    return sub


def run_series(s, seed: int, train_labels: bool, ucr: bool = False) -> dict:
    det = build_detector("ensemble", seed=seed, members=MEMBERS)
    y_train = s.labels[: s.train_end] if train_labels and s.labels is not None else None
    t0 = time.perf_counter()
    det.fit(s.values[: s.train_end], y_train)
    fit_s = time.perf_counter() - t0
    x, y = s.values[s.train_end:], s.labels[s.train_end:]
    out = {"series": s.name, "fit_seconds": round(fit_s, 2), "auc_pr": {}, "chosen": {}} | ({"ucr_hit": {}} if ucr else {})
    _cache.clear()
    for name, (members, changes) in VARIANTS.items():
        v = variant(det, members, changes)
        scores = v.decision_function(x)
        out["auc_pr"][name] = auc_scores(y, scores)[0]
        if ucr:  # one anomaly per series: the archive's rule (METHOD.md section 6)
            out["ucr_hit"][name] = bool(ucr_archive_hit(scores, y).hit)
        out["chosen"][name] = [str(ch.get("chosen")) for ch in v.selection_]
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def report(out: Path, datasets: list[str]) -> str:
    lines = ["| set | series | " + " | ".join(VARIANTS) + " |", "|---|---|" + "---|" * len(VARIANTS)]
    means = []
    for ds in datasets:
        cells = [json.loads(p.read_text()) for p in sorted((out / ds).glob("*.json"))]
        cells = [c for c in cells if "error" not in c]
        if not cells:
            continue
        key = "ucr_hit" if ds == "ucr" else "auc_pr"  # UCR: archive-rule accuracy, else AUC-PR
        row = [100 * np.mean([c[key][v] for c in cells]) for v in VARIANTS]
        means.append(row)
        lines.append(f"| {ds} | {len(cells)} | " + " | ".join(f"{r:.2f}" for r in row) + " |")
    if means:
        lines.append("| mean of the sets | | " + " | ".join(f"{r:.2f}" for r in np.mean(means, axis=0)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--datasets", nargs="+", default=["nab", "aiops", "asd"])
    ap.add_argument("--per-dataset", type=int, nargs="+", default=[8])
    ap.add_argument("--holdout", type=int, default=None, help="the series --per-dataset does NOT pick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-train-labels", dest="train_labels", action="store_false")
    ap.add_argument("--shard", default="0/1", help="I/N: every N-th series from the I-th")
    ap.add_argument("--ucr-half", choices=["odd", "even"], default="odd", help="UCR: which half to run")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    shard, n_shards = (int(v) for v in args.shard.split("/"))
    if not args.report_only:
        counts = args.per_dataset * len(args.datasets) if len(args.per_dataset) == 1 else args.per_dataset
        for ds, k in zip(args.datasets, counts):
            for s in choose_series(ds, k, args.root, args.holdout, args.ucr_half)[shard::n_shards]:
                target = args.out / ds / (s.name.replace("/", "__") + ".json")
                if target.exists() or not s.labels[s.train_end:].any():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    cell = run_series(s, args.seed, args.train_labels, ucr=ds == "ucr")
                except ValueError as exc:  # e.g. a training part too short for the ensemble
                    cell = {"series": s.name, "error": str(exc)}
                target.write_text(json.dumps(cell))
                print(ds, s.name, cell.get("seconds"), {k: round(v, 3) for k, v in cell.get("auc_pr", {}).items()},
                      flush=True)
    print(report(args.out, args.datasets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
