"""Combination rules of the default ensemble, re-evaluated offline from saved runs (no full refit).

    OMP_NUM_THREADS=1 python bench/ensemble_fallback_study.py collect --runs /tmp/defaults:ensemble-oi \
        /tmp/holdout:ensemble --datasets nab aiops asd smd --out /tmp/ensstudy
    python bench/ensemble_fallback_study.py evaluate --out /tmp/ensstudy --datasets nab aiops asd smd

``collect`` reads the cells that ``bench/default_detectors.py`` saved for the shipped ensemble (its
scores and, per channel, every candidate's confidence in ``explain``) and stores per series what
any rule of the form "the most confident candidate when its confidence >= t, else a fallback F;
channels combined by R" needs:

* the learned members' scores (OC-SVM, IForest on the joint window of all channels), refitted
  exactly as the ensemble fits them (they take well under a second) and robust-z against their own
  held-out training scores, as ``EnsembleDetector._member_candidates`` does;
* per channel, the most confident candidate and its confidence (from ``explain``), and its test
  scores when that confidence is at least 0.3 (the lowest threshold studied): for a univariate
  series the saved ensemble scores ARE the pick; for a multivariate one the chosen channels'
  classic candidates are recomputed (``candidate_scores``, same arguments as the ensemble).

``evaluate`` then scores the rules (point AUC-PR, mean over series per dataset; on ``ucr`` the
archive rule's accuracy in %) in milliseconds, and checks that the shipped rule reproduces the saved
ensemble AUC-PR. ``combine`` rows: a trusted pick joins the fallback (mean or maximum) instead of
replacing it (``EnsembleConfig.pick_combine``). The third round's study (docs/results.md):

    python bench/ensemble_fallback_study.py collect --runs /tmp/unseen:ensemble-per-channel --datasets msl smap --out S
    python bench/ensemble_fallback_study.py collect --runs UCR_ODD:ensemble --datasets ucr --out S_ODD
    python bench/ensemble_fallback_study.py evaluate --out S --datasets nab aiops asd smap msl
    python bench/ensemble_fallback_study.py evaluate --out S_ODD --datasets ucr
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import product
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capmix.data.loaders import load_dataset  # noqa: E402
from capmix.detectors.classic import candidate_scores  # noqa: E402
from capmix.detectors.confidence import peak_confidence  # noqa: E402
from capmix.detectors.ensemble import EnsembleConfig, EnsembleDetector  # noqa: E402
from capmix.detectors.period import estimate_period  # noqa: E402
from capmix.evaluation.metrics import auc_scores  # noqa: E402
from capmix.evaluation.thresholds import ucr_archive_hit  # noqa: E402

LOWEST = 0.3  # the shipped min_confidence: picks below it were never taken, stricter rules only


def _cells(runs: list[str], ds: str) -> dict[str, dict]:
    out = {}
    for spec in runs:
        base, method = spec.split(":")
        for p in sorted((Path(base) / ds / method).glob("*.json")):
            cell = json.loads(p.read_text())
            if "error" not in cell and p.with_suffix(".npz").exists():
                out[cell["series"]] = {**cell, "npz": str(p.with_suffix(".npz")), "run": spec}
    return out


def collect_one(s, cell: dict | None, target: Path, recompute: bool = True) -> None:
    """``cell`` None (a multivariate series the shipped ensemble never finished): members only."""
    cfg = EnsembleConfig()
    train, test = s.values[: s.train_end].astype(np.float64), s.values[s.train_end:].astype(np.float64)
    det = EnsembleDetector(cfg)
    y_train = s.labels[: s.train_end] if s.labels is not None else None
    det.members_ = [m.fit(train, y_train) for m in det._unfitted_members()]
    det.reference_ = train
    members = det._member_candidates(test)
    out = {"labels": s.labels[s.train_end:].astype(np.int8)}
    if cell is not None:
        out["old"] = np.load(cell["npz"])["scores"].astype(np.float64)
        out["old_auc_pr"] = np.float64(cell["auc_pr"])  # as the bench computed it (float64 scores)
    for kind, _, z, zref in members:
        out[f"z_{kind}"], out[f"zref_{kind}"] = z, zref
    pick_conf, pick_src = [], []
    explain = cell["explain"] if cell is not None else [
        {"channel": c, "candidates": [("?", 0, np.nan)] + [(k, 0, np.nan) for k, *_ in members]}
        for c in range(test.shape[1])]
    for ch in explain:
        c = ch["channel"]
        cands = ch["candidates"]
        n_classic = len(cands) - len(members)
        confs = [q for _, _, q in cands]
        best = int(np.argmax(confs))
        pick_conf.append(confs[best])
        if cell is None:
            pick_src.append("missing")
        elif confs[best] < LOWEST:
            pick_src.append("none")
        elif best >= n_classic:  # a member was the confident pick
            pick_src.append(f"member:{cands[best][0]}")
        elif test.shape[1] == 1:  # univariate: the saved ensemble scores are this pick
            out[f"pick_{c}"] = out["old"]
            pick_src.append("saved")
        elif not recompute:  # too costly (SMD: ~10 s per channel): rules that need it are skipped
            pick_src.append("missing")
        else:
            period = estimate_period(train[:, c], cfg.min_period, cfg.max_period)
            cl = list(candidate_scores(
                train[:, c], test[:, c], period, roll_mults=cfg.roll_mults, mp_mults=cfg.mp_mults,
                points_per_period=cfg.points_per_period, max_len=cfg.max_join_points,
                default_period=cfg.default_period, roll_kinds=cfg.roll_kinds, mp_kinds=cfg.mp_kinds))
            k, w, sc, ref = cl[best]
            q = peak_confidence(sc, max(int(w), cfg.min_exclusion), ref)
            if (k, int(w)) != (cands[best][0], cands[best][1]) or abs(q - confs[best]) > 1e-3:
                print(f"  warn {s.name} ch{c}: recomputed {k},{w},{q:.4f} vs {cands[best]}", flush=True)
            out[f"pick_{c}"] = sc.astype(np.float64)
            pick_src.append("recomputed")
    out["pick_conf"] = np.asarray(pick_conf)
    out["pick_src"] = np.asarray(pick_src)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target, **out)


def collect(args) -> None:
    for ds in args.datasets:
        cells = _cells(args.runs, ds)
        for s in load_dataset(ds, args.root):
            target = args.out / ds / (s.name.replace("/", "__") + ".npz")
            if target.exists() or (s.name not in cells and not (args.members_only and s.values.shape[1] > 1)):
                continue
            import time
            t0 = time.perf_counter()
            collect_one(s, cells.get(s.name), target, recompute=ds not in args.no_recompute)
            print(f"{ds} {s.name} {time.perf_counter() - t0:.1f}s", flush=True)


# ---------------------------------------------------------------------------------------- rules
FALLBACKS = {
    "mean": lambda o, i: (o + i) / 2,             # shipped: the mean of OC-SVM and IForest
    "ocsvm": lambda o, i: o,
    "w75": lambda o, i: 0.75 * o + 0.25 * i,
    "max": lambda o, i: np.maximum(o, i),
}
THRESHOLDS = [0.3, 0.4, 0.5, 0.6, 0.7, 0.9, np.inf]


def fallback(d, name: str) -> tuple[np.ndarray, float]:
    f, fref = FALLBACKS[name](d["z_ocsvm"], d["z_iforest"]), FALLBACKS[name](d["zref_ocsvm"], d["zref_iforest"])
    return f, peak_confidence(f, 100, fref)


def apply_rule(d, fb: str, thr: float, beat: bool, multi: str, combine: str = "replace") -> np.ndarray | None:
    """Scores of one rule; None when the series lacks what the rule needs.

    ``multi``: how a multivariate series is scored -- ``max`` (shipped: every channel's pick or
    the fallback, combined by the maximum), ``joint`` (the fallback of the joint-window members
    only), ``jointsel`` (the joint members compete on confidence, else the fallback).
    ``combine``: what a confident pick does -- ``replace`` the fallback (shipped), or join it by
    the ``mean`` or the ``max`` of the two robust z-scores (a pick then adds, never removes).
    """
    f, fconf = fallback(d, fb)
    conf, src = d["pick_conf"], d["pick_src"]
    if len(conf) > 1 and multi in ("joint", "jointsel"):
        if multi == "joint":
            return f
        qs = {k: peak_confidence(d[f"z_{k}"], 100, d[f"zref_{k}"]) for k in ("ocsvm", "iforest")}
        k = max(qs, key=qs.get)
        return d[f"z_{k}"] if qs[k] >= thr and (not beat or qs[k] > fconf) else f
    outs = []
    for c, (q, how) in enumerate(zip(conf, src)):
        take = how != "none" and q >= thr and (not beat or q > fconf)
        if not take:
            outs.append(f)
        elif how == "missing":
            return None
        elif how.startswith("member:"):
            outs.append(d["z_" + how.split(":")[1]])
        else:
            outs.append(d[f"pick_{c}"])
        if take and combine != "replace":
            outs[-1] = (outs[-1] + f) / 2 if combine == "mean" else np.maximum(outs[-1], f)
    return np.max(np.stack(outs), axis=0)


def _auc(d, fn, ucr: bool = False) -> float | None:
    """Point AUC-PR of one rule's scores; on UCR the archive's rule (hit = 1) instead."""
    out = fn(d)
    if out is None or isinstance(out, float):
        return None if out is None or ucr else out
    return float(ucr_archive_hit(out, d["labels"]).hit) if ucr else auc_scores(d["labels"], out)[0]


def evaluate(args) -> None:
    data = {ds: {p.stem: dict(np.load(p)) for p in sorted((args.out / ds).glob("*.npz"))} for ds in args.datasets}
    # reproduction check: the shipped rule must give the saved scores' AUC-PR
    for ds, series in list(data.items()):
        if ds.startswith("ucr"):  # UCR rows are archive-rule accuracy in %, not AUC-PR
            print(f"{ds}: {len(series)} series, archive rule")
            continue
        diffs = [abs(auc_scores(d["labels"], r)[0] - float(d["old_auc_pr"])) for d in series.values()
                 if "old" in d and (r := apply_rule(d, "mean", 0.3, False, "max")) is not None]
        print(f"{ds}: {len(series)} series, shipped rule reproduced on {len(diffs)} to max |dAUC-PR| "
              f"{max(diffs, default=float('nan')):.4f}")
        with_old = {k: d for k, d in series.items() if "old" in d}
        if 0 < len(with_old) < len(series):  # the series where the shipped ensemble finished, apart
            data[f"{ds}({len(with_old)})"] = with_old
    sets = list(data)

    def mean_pr(series, fn, ds=""):
        v = [_auc(d, fn, ds.startswith("ucr")) for d in series.values()]
        return float("nan") if any(x is None for x in v) else 100 * float(np.nanmean(v))

    rows = [("old (shipped, saved AUC-PR)", lambda d: float(d["old_auc_pr"]) if "old" in d else None),
            ("OC-SVM alone", lambda d: d["z_ocsvm"]), ("IForest alone", lambda d: d["z_iforest"])]
    for fb, thr, beat, multi in product(FALLBACKS, THRESHOLDS, [False, True], ["max", "joint", "jointsel"]):
        if (thr == np.inf and (beat or multi != "max")) or (beat and thr not in (0.3, 0.5)):
            continue
        rows.append((f"fb={fb} t={thr} beat={int(beat)} multi={multi}",
                     lambda d, a=(fb, thr, beat, multi): apply_rule(d, *a)))
    for fb, thr, combine in product(["mean", "ocsvm"], [0.3, 0.5], ["mean", "max"]):
        rows.append((f"fb={fb} t={thr} combine={combine}",
                     lambda d, a=(fb, thr, False, "max", combine): apply_rule(d, *a)))
    print("| rule | " + " | ".join(sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name, fn in rows:
        print(f"| {name} | " + " | ".join(f"{mean_pr(data[ds], fn, ds):.2f}" for ds in sets) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["collect", "evaluate"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--runs", nargs="+", default=["/tmp/defaults:ensemble-oi", "/tmp/holdout:ensemble"],
                    help="DIR:METHOD cells of the shipped ensemble (bench/default_detectors.py --out DIR)")
    ap.add_argument("--datasets", nargs="+", default=["nab", "aiops", "asd", "smd"])
    ap.add_argument("--members-only", action="store_true",
                    help="also store the members of multivariate series without a saved ensemble cell")
    ap.add_argument("--no-recompute", nargs="*", default=["smd"],
                    help="datasets whose multivariate picks are not recomputed (rules needing them are skipped)")
    args = ap.parse_args(argv)
    collect(args) if args.step == "collect" else evaluate(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
