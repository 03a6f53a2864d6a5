"""Anomaly shift per dataset (paper Eq. 10): CAP vs CAPMix synthetic anomalies against real ones.

For every series: train a CAPMix detector on the training period (the dataset's preset), embed
normal / real-anomalous test windows and the synthetic anomalies as CAP and as CAPMix see them
with its encoder (capmix/evaluation/shift.py), and measure energy distance and RBF MMD². Writes
``reports/shift/shift.csv`` (one row per series), ``reports/shift/summary.json`` (per dataset:
means, and on how many series Eq. 10 holds) and UMAP pictures ``reports/shift/<dataset>_<series>.png``.

    python bench/anomaly_shift.py --datasets default ucr aiops smd asd --subset 4 --max-epochs 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capmix.config import detector_config, load_params  # noqa: E402
from capmix.detectors.capmix.detector import CAPMixDetector  # noqa: E402
from capmix.atomic import write_json  # noqa: E402
from capmix.pipeline import write_csv  # noqa: E402
from capmix.evaluation.shift import anomaly_shift, numbers, plot_shift_umap  # noqa: E402


def load(name: str, p: dict, subset: int | None):
    if name == "default":
        from capmix.data.synthetic import GeneratorConfig, generate

        series = generate(GeneratorConfig.model_validate({k: v for k, v in p["generate"].items() if k != "out"}))
        return series[:subset] if subset else series
    from capmix.data.loaders import load_dataset

    return load_dataset(name, p.get("dataset", {}).get("root", "../shared/datasets"), subset=subset)


def summarise(rows: list[dict]) -> dict:
    out = {}
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        rs = [r for r in rows if r["dataset"] == ds]
        keys = [k for k in rs[0] if k.startswith(("energy/", "mmd/"))]
        out[ds] = {
            "n_series": len(rs),
            **{f"mean {k}": float(np.mean([r[k] for r in rs])) for k in keys},
            "eq10_energy_holds": f"{sum(bool(r['eq10_energy']) for r in rs)}/{len(rs)}",
            "eq10_mmd_holds": f"{sum(bool(r['eq10_mmd']) for r in rs)}/{len(rs)}",
            # closer to real only because closer to the data overall? compare real/normal ratios
            **{f"mean energy ratio {syn}_real/{syn}_normal": float(np.mean(
                [r[f"energy/{syn}_real"] / r[f"energy/{syn}_normal"] for r in rs])) for syn in ("cap", "capmix")},
            "mean n_soft": float(np.mean([r["n_soft"] for r in rs])),
            "capmix_closer_to_normal_energy": f"{sum(r['energy/capmix_normal'] < r['energy/cap_normal'] for r in rs)}/{len(rs)}",
            "seconds_per_series": float(np.mean([r["seconds"] for r in rs])),
        }
    return out


def markdown(rows: list[dict]) -> str:
    """Per-series table for docs/shift.md: distances to real and to normal, CAP vs CAPMix."""
    head = ("| dataset | series | energy CAP→real | energy CAPMix→real | MMD² CAP→real | MMD² CAPMix→real "
            "| energy CAP→normal | energy CAPMix→normal | energy normal→real | soft labels | Eq. 10 (energy / MMD) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['series']} | {r['energy/cap_real']:.3f} | {r['energy/capmix_real']:.3f} "
            f"| {r['mmd/cap_real']:.4f} | {r['mmd/capmix_real']:.4f} | {r['energy/cap_normal']:.3f} "
            f"| {r['energy/capmix_normal']:.3f} | {r['energy/normal_real']:.3f} | {int(r['n_soft'])} "
            f"| {'yes' if r['eq10_energy'] else 'no'} / {'yes' if r['eq10_mmd'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--datasets", nargs="+", default=["default", "ucr", "aiops", "smd", "asd"])
    ap.add_argument("--subset", type=int, default=4, help="first N series of each dataset")
    ap.add_argument("--max-epochs", type=int, default=10)
    ap.add_argument("--plots", type=int, default=1, help="UMAP pictures per dataset")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--out", default="reports/shift")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    p = load_params(args.params)
    presets = {k: v.get("preset", k) for k, v in (p.get("benchmark", {}).get("datasets") or {}).items()}
    out = Path(args.out)
    rows: list[dict] = []
    csv_path = out / "shift.csv"
    if csv_path.exists():  # resume: keep finished series
        import pandas as pd

        rows = pd.read_csv(csv_path).to_dict("records")
    done = {(r["dataset"], r["series"]) for r in rows}
    for ds in args.datasets:
        preset = presets.get(ds, ds if ds in (p.get("presets") or {}) else "default")
        cfg = detector_config(p, preset=preset, max_epochs=args.max_epochs, variant="capmix", device="cpu")
        for i, s in enumerate(load(ds, p, args.subset)):
            if (ds, s.name) in done:
                continue
            t0 = time.perf_counter()
            try:
                det = CAPMixDetector(cfg).fit(*s.train)
                r = anomaly_shift(det, s, keep_features=i < args.plots)
            except ValueError as exc:  # e.g. no anomalous test window at this window size
                print(f"{ds}/{s.name}: skipped ({exc})", flush=True)
                continue
            if i < args.plots:
                plot_shift_umap(r, out / f"{ds}_{s.name}.png", title=f"{ds} / {s.name}: anomaly shift (Fig. 7)")
            row = {"dataset": ds, "series": s.name, "preset": preset, **numbers(r),
                   "seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(f"{ds}/{s.name}: energy to real CAP {row['energy/cap_real']:.3f} CAPMix "
                  f"{row['energy/capmix_real']:.3f}; MMD² CAP {row['mmd/cap_real']:.4f} CAPMix "
                  f"{row['mmd/capmix_real']:.4f} ({row['seconds']} s)", flush=True)
            write_csv(rows, csv_path)
            write_json(summarise(rows), out / "summary.json")
            (out / "shift.md").write_text(markdown(rows))
    print(json.dumps(summarise(rows), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
