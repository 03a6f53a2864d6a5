"""UCR accuracy by the archive's rule, odd / even / all 250, for several benchmark cell folders.

    python bench/ucr_accuracy_plot.py --out docs/img/ucr_ensemble_accuracy.png \\
        "ensemble, ucr preset (sweep)=reports/ucr_sweep/cells/ucr/ensemble" \\
        "ensemble, period-tied candidates=reports/benchmark/cells/ucr/ensemble" \\
        "OC-SVM=reports/benchmark/cells/ucr/ocsvm" "matrix profile=reports/benchmark/cells/ucr/mp"

Each argument is ``label=folder`` of a ``capmix benchmark`` method's cells (seed 0). The KDD Cup
2021 5th-place figures (as the issue reports them: 85.6 % even, 86.8 % all) are drawn as lines.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

KDD = {"even": 85.6, "all 250": 86.8}


def accuracy(folder: Path) -> dict[str, float]:
    hits = {}
    for f in (folder / "seed0").glob("*.json"):
        cell = json.loads(f.read_text())
        hits[int(cell["cell"]["series"][:3])] = bool(cell["result"]["ucr_hit"])
    if len(hits) != 250:
        raise SystemExit(f"{folder}: {len(hits)} cells, expected the whole archive (250)")
    part = {"odd": [h for i, h in hits.items() if i % 2], "even": [h for i, h in hits.items() if i % 2 == 0],
            "all 250": list(hits.values())}
    return {k: 100.0 * float(np.mean(v)) for k, v in part.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("methods", nargs="+", help="label=cells folder")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    rows = [(m.split("=", 1)[0], accuracy(Path(m.split("=", 1)[1]))) for m in args.methods]
    parts = ["odd", "even", "all 250"]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.9 * len(rows)))
    h = 0.8 / len(parts)
    for j, part in enumerate(parts):
        y = np.arange(len(rows)) + (j - 1) * h
        vals = [acc[part] for _, acc in rows]
        ax.barh(y, vals, height=h, label=part)
        for yi, v in zip(y, vals):
            ax.text(v + 0.5, yi, f"{v:.1f}", va="center", fontsize=7)
    for part, v in KDD.items():
        ax.axvline(v, color="k", ls="--" if part == "all 250" else ":", lw=1, label=f"KDD Cup 2021 5th, {part}: {v}")
    ax.set_yticks(np.arange(len(rows)), [r for r, _ in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("UCR accuracy, % of series (archive rule: top location in [start-100, end+100])", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    for label, acc in rows:
        print(f"{label}: " + ", ".join(f"{p} {acc[p]:.1f} %" for p in parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
