"""Did `dvc repro` reproduce the committed results? Compares the working tree with a git revision.

    python scripts/check_reproduced.py [--rev HEAD] [--atol 1e-3] [--curve-atol 1e-2]

What must be equal bit for bit: every stage's command, parameters and code in dvc.lock, and every
output that holds no trained float32 state (the generated data, the validation summary, the tuning
file). The default data is generated to the same bits on any CPU (capmix/data/synthetic.py).

What may differ in the last digits: the trained models and what is computed from them (``FLOAT``
below). torch picks its float32 kernels per CPU (oneDNN, MKL and ATen's vector width), so another
CPU trains to other last bits: capping those kernels at SSE4.1 on one machine moved the headline
AUC-PR by 2e-5, a per-series metric by 7e-5 and a training-curve value by 8e-4 (docs/results.md,
"Reproducing the default run"). Those files are compared as numbers instead: the metrics files and the
training curves must hold the same keys, rows and columns, with every number within ``--atol``
(metrics: AUCs and F1s in [0, 1]) or ``--curve-atol`` (losses, validation AUCs) of the committed one.
The model files and PNG renderings are covered by those numbers. On the CPU that wrote dvc.lock the
numbers are usually equal, and this prints that too.

Exit status 0 when reproduced, 1 with the differences listed otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]

#: outputs (and the deps that consume them) that hold trained float32 state or come from it
FLOAT = ("models", "plots/training.csv", "plots/eval", "metrics/metrics.json", "metrics/metrics_all.json",
         "metrics/per_series.csv")
#: of those, the files compared as numbers: the metrics, and the training curves (losses drift further
#: over the epochs than the final scores do)
METRICS = ("metrics/metrics.json", "metrics/metrics_all.json", "metrics/per_series.csv")
CURVES = ("plots/training.csv",)


def committed(rev: str, path: str) -> str:
    done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"check_reproduced: {path} is not in git at {rev}: {done.stderr.strip()}")
    return done.stdout


def _entries(stage: dict[str, Any], key: str) -> dict[str, Any]:
    return {e["path"]: e for e in stage.get(key, [])}


def lock_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two dvc.lock files, outside the md5s of ``FLOAT`` paths."""
    problems = []
    old_stages, new_stages = old.get("stages", {}), new.get("stages", {})
    if set(old_stages) != set(new_stages):
        problems.append(f"dvc.lock stages differ: {sorted(old_stages)} vs {sorted(new_stages)}")
    for name in sorted(set(old_stages) & set(new_stages)):
        a, b = old_stages[name], new_stages[name]
        for key in ("cmd", "params"):
            if a.get(key) != b.get(key):
                problems.append(f"dvc.lock {name}.{key} differs")
        for key in ("deps", "outs"):
            ea, eb = _entries(a, key), _entries(b, key)
            if set(ea) != set(eb):
                problems.append(f"dvc.lock {name}.{key} lists other paths: {sorted(set(ea) ^ set(eb))}")
            for path in sorted(set(ea) & set(eb)):
                if path not in FLOAT and ea[path] != eb[path]:
                    problems.append(f"dvc.lock {name}.{key}: {path} changed ({ea[path].get('md5')} -> "
                                    f"{eb[path].get('md5')}); it must be bit-identical on any machine")
    return problems


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}{k}/"))
        return out
    return {prefix.rstrip("/"): value}


def _close(a: Any, b: Any, atol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or not isinstance(a, int | float) or not isinstance(b, int | float):
        return a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol


def number_differences(path: str, old_text: str, new_text: str, atol: float) -> tuple[list[str], float]:
    """Differences beyond ``atol`` between two versions of a JSON or CSV file; and the largest gap."""
    if path.endswith(".json"):
        a, b = _flatten(json.loads(old_text)), _flatten(json.loads(new_text))
    else:
        da, db = pd.read_csv(io.StringIO(old_text)), pd.read_csv(io.StringIO(new_text))
        if list(da.columns) != list(db.columns) or len(da) != len(db):
            return [f"{path}: shape or columns differ ({da.shape} vs {db.shape})"], math.inf
        a = {f"row {i}/{c}": v for c in da.columns for i, v in enumerate(da[c].tolist())}
        b = {f"row {i}/{c}": v for c in db.columns for i, v in enumerate(db[c].tolist())}
    if set(a) != set(b):
        return [f"{path}: other keys: {sorted(set(a) ^ set(b))[:5]}"], math.inf
    gaps = [abs(a[k] - b[k]) for k in a if isinstance(a[k], int | float) and isinstance(b[k], int | float)
            and not isinstance(a[k], bool) and not (math.isnan(a[k]) or math.isnan(b[k]))]
    bad = [f"{path}: {k}: {a[k]!r} committed, {b[k]!r} now" for k in sorted(a) if not _close(a[k], b[k], atol)]
    return bad, max(gaps, default=0.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", default="HEAD", help="git revision holding the committed results")
    ap.add_argument("--atol", type=float, default=1e-3, help="largest absolute gap allowed in the metrics")
    ap.add_argument("--curve-atol", type=float, default=1e-2,
                    help="largest absolute gap allowed in the training curves")
    args = ap.parse_args(argv)

    problems = lock_differences(yaml.safe_load(committed(args.rev, "dvc.lock")),
                                yaml.safe_load((ROOT / "dvc.lock").read_text()))
    gaps = {}
    for path in METRICS + CURVES:
        atol = args.curve_atol if path in CURVES else args.atol
        bad, gaps[path] = number_differences(path, committed(args.rev, path), (ROOT / path).read_text(), atol)
        problems += bad
    if problems:
        print(f"check_reproduced: not reproduced ({len(problems)} differences):")
        for p in problems[:40]:
            print(f"  {p}")
        return 1
    if not any(gaps.values()):
        print("check_reproduced: data, code, metrics and training curves reproduced bit for bit")
    else:
        metric_gap = max(gaps[p] for p in METRICS)
        curve_gap = max(gaps[p] for p in CURVES)
        print("check_reproduced: data and code bit for bit; trained on other float32 kernels, the metrics "
              f"within {metric_gap:.2g} (allowed {args.atol:g}) and the training curves within {curve_gap:.2g} "
              f"(allowed {args.curve_atol:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
