"""How the ensemble's learned members are put on one scale before they are averaged, measured.

    OMP_NUM_THREADS=1 python bench/member_scale_study.py --params P --datasets smd asd --half odd \
        --members capmix ocsvm iforest --max-epochs 10 --out DIR
    python bench/member_scale_study.py --out DIR --report-only

Each member's test scores are robust z-scores against its own held-out training scores, exactly as
``EnsembleDetector._member_candidates`` computes them (the detector is fitted by the benchmark's
own ``run_cell`` settings: params, dataset preset, ``--max-epochs`` reaching CAPMix). A member whose
held-out scores are nearly constant (a saturated classifier) gets z-scores in the thousands and
decides the plain mean alone; the rules below differ only in the transform applied to each z before
the mean. Every rule is scored by the harness's window AUC-PR (``evaluate_series``), per series
saved as JSON so the table can be rebuilt without refitting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capmix.config import load_params  # noqa: E402
from capmix.detectors.ensemble import MEMBER_SCALES, scale_member  # noqa: E402
from capmix.detectors.registry import build_detector  # noqa: E402
from capmix.evaluation.benchmark import DatasetSpec, _budget_overrides, load_benchmark_dataset  # noqa: E402
from capmix.evaluation.evaluate import evaluate_series  # noqa: E402


def rules(names: list[str]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """rule name -> (scale, indices of the members averaged): every member alone, then all of them."""
    out = {f"{n} alone": ("z", (i,)) for i, n in enumerate(names)}
    out.update({f"mean, {s}": (s, tuple(range(len(names)))) for s in MEMBER_SCALES})
    return out


def run(args: argparse.Namespace) -> None:
    params = load_params(args.params).model_dump()
    params["ensemble"].update(members=list(args.members), fallback_members=list(args.members),
                              classic=False, selection="mean")
    for ds in args.datasets:
        spec = DatasetSpec(**params["benchmark"]["datasets"][ds])
        params["ensemble_presets"].pop(spec.preset, None)  # the members under study, not a preset's
        for s in load_benchmark_dataset(ds, spec, args.root, None, args.half):
            path = args.out / ds / f"{s.name}.json"
            if path.exists():
                continue
            det = build_detector("ensemble", params, preset=spec.preset, seed=args.seed,
                                 **_budget_overrides("ensemble", params, spec.preset, args.seed, args.max_epochs))
            (x_tr, y_tr), (x_te, y_te) = s.train, s.test
            t0 = time.perf_counter()
            det.fit(x_tr, y_tr)
            cands = det._member_candidates(det._check_input(x_te, det.config.window))
            z, refs = [c[2] for c in cands], [c[3] for c in cands]
            row = {"series": s.name, "seconds": round(time.perf_counter() - t0, 1),
                   "max_z": {n: float(np.max(v)) for n, v in zip(args.members, z)}}
            for rule, (scale, idx) in rules(list(args.members)).items():
                score = np.mean([scale_member(z[i], scale, refs[i]) for i in idx], axis=0)
                res = evaluate_series(s.name, score, y_te, 0.0, det.config.window, det.config.stride)
                row[rule] = res.auc["window"][0]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(row))
            print(ds, s.name, {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}, flush=True)


def report(out: Path) -> str:
    lines = []
    for ds_dir in sorted(p for p in out.iterdir() if p.is_dir()):
        rows = [json.loads(p.read_text()) for p in sorted(ds_dir.glob("*.json"))]
        names = [k for k in rows[0] if k not in ("series", "seconds", "max_z")]
        lines += [f"\n{ds_dir.name} ({len(rows)} series), window AUC-PR in %", "| rule | mean |", "|---|---|"]
        lines += [f"| {n} | {100 * np.mean([r[n] for r in rows]):.2f} |" for n in names]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--root", default="../shared/datasets")
    ap.add_argument("--datasets", nargs="+", default=["smd", "asd"])
    ap.add_argument("--half", choices=["odd", "even", "all"], default="odd")
    ap.add_argument("--members", nargs="+", default=["capmix", "ocsvm", "iforest"])
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.report_only:
        run(args)
    print(report(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
