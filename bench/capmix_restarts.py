"""CAPMix restarts chosen by peak confidence on the UCR archive, from saved runs (no refit).

    OMP_NUM_THREADS=1 python bench/default_detectors.py --out S0 --datasets ucr --ucr-half odd --per-dataset 125 --methods capmix
    OMP_NUM_THREADS=1 python bench/default_detectors.py --out S1 --seed 1 --datasets ucr --ucr-half odd --per-dataset 125 --methods capmix
    python bench/capmix_restarts.py S0 S1

Each run directory holds ``bench/default_detectors.py`` cells of CAPMix with its library defaults
at one seed (the test part's point scores). Per series, the rules below are scored by the archive
rule (METHOD.md section 6). ``confidence`` is the rule of
``build_detector("ensemble", members=["capmix"], member_seeds=K, classic=False, selection="confidence",
confidence_reference=False)``: its members are the same fits (seeds 0..K-1, library defaults), their
robust z-scores are a positive affine map of these point scores, and ``peak_confidence`` (top peak
over the next one outside max(window, min_exclusion) points, relative to the median) does not change
under such a map. Runs saved by an older checkout can differ slightly from a refit today (CPU
training is reproducible within one code state, not across changes of its numerics). The mean of raw
scores is shown for information only (the ensemble's ``mean`` averages robust z-scores, which need the
held-out training scores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capmix.detectors.confidence import peak_confidence  # noqa: E402
from capmix.detectors.ensemble import EnsembleConfig  # noqa: E402
from capmix.detectors.registry import build_detector  # noqa: E402
from capmix.evaluation.thresholds import ucr_archive_hit  # noqa: E402


def load(run: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for p in sorted((run / "ucr" / "capmix").glob("*.npz")):
        if "error" not in json.loads(p.with_suffix(".json").read_text()):
            z = np.load(p)
            out[p.stem] = (z["scores"].astype(np.float64), z["labels"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="default_detectors output dirs, one per seed (0, 1, ...)")
    ap.add_argument("--min-confidence", type=float, default=EnsembleConfig().min_confidence,
                    help="the 'restart only when unsure' rule: seed 0 unless its confidence is below this")
    args = ap.parse_args(argv)
    runs = [load(r) for r in args.runs]
    names = sorted(set.intersection(*[set(r) for r in runs]))
    exclusion = max(build_detector("capmix").config.window, EnsembleConfig().min_exclusion)
    hits: dict[str, list[bool]] = {}

    def add(rule: str, v: bool) -> None:
        hits.setdefault(rule, []).append(bool(v))

    for name in names:
        y = runs[0][name][1]
        scores = [r[name][0] for r in runs]
        hit = [ucr_archive_hit(s, y).hit for s in scores]
        conf = [peak_confidence(s, exclusion) for s in scores]
        for i, h in enumerate(hit):
            add(f"seed {i} alone", h)
        add(f"confidence: the most confident of {len(runs)} seeds (shipped as an ensemble option)",
            hit[int(np.argmax(conf))])
        unsure = conf[0] < args.min_confidence
        add(f"seed 0; the most confident seed only when seed 0 < {args.min_confidence}",
            hit[int(np.argmax(conf))] if unsure else hit[0])
        add("mean of the raw scores (information)", ucr_archive_hit(np.mean(scores, axis=0), y).hit)
        add("any seed hits (oracle, not deployable)", any(hit))
        add(f"seed 0 confidence >= {args.min_confidence}: share of series", not unsure)
    print(f"{len(names)} series in all {len(runs)} runs; UCR accuracy by the archive rule")
    print("| rule | hits | accuracy |\n|---|---|---|")
    for rule, v in hits.items():
        print(f"| {rule} | {sum(v)} | {100 * np.mean(v):.1f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
