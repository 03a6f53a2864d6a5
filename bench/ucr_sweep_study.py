"""Offline study of the sweep scheme's selection on recorded candidates, with a cross-check that
keeps copies of one recording together.

    python bench/ucr_label_free.py --scheme sweep --half odd --max-len 10000 --out ODD
    python bench/ucr_sweep_study.py ODD

The archive holds several copies of one recording (plain, DISTORTED..., NOISE...; e.g. 001
DISTORTED1sddb40 and 093 NOISE1sddb40), so a rule that wins on one copy tends to win on the others:
the effective sample is smaller than the series count. Every rule is therefore also scored on two
halves of the RECORDINGS (groups A and B: alternate recordings in name order); a choice counts as
supported when it gains on both. Labels are used to score rules only, as in any benchmark.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

ALL = ("ptp", "ptp_diff", "ptp_acc", "ptp_inv", "small_diff", "large_diff", "cross_diff", "std_acc",
       "std_acc_inv", "mp_novelty", "np_novelty", "mp_outlier", "np_outlier")


def recording(name: str) -> str:
    """The recording a series copies: the name without the DISTORTED/NOISE prefix and its copy number."""
    return re.sub(r"^\d+", "", re.sub(r"^(DISTORTED|NOISE)", "", name))


def max_ratio(drop: tuple[str, ...] = (), key: str = "conf") -> Callable[[list[dict]], bool]:
    """Rule: the candidate with the highest ``key`` among the kinds not in ``drop``; True if it hits."""
    def rule(cands: list[dict]) -> bool:
        kept = [c for c in cands if c["kind"] not in drop]
        return bool(kept) and max(kept, key=lambda c: c.get(key, 0.0))["hit"]
    return rule


RULES: dict[str, Callable[[list[dict]], bool]] = {
    "every kind (the published design)": max_ratio(),
    "exclusion max(window, 100)": max_ratio(key="conf100"),
    "without np_novelty": max_ratio(("np_novelty",)),
    "without np_outlier": max_ratio(("np_outlier",)),
    "without np_novelty, np_outlier (chosen)": max_ratio(("np_novelty", "np_outlier")),
    "without the novelty joins": max_ratio(("mp_novelty", "np_novelty")),
    "joins only": max_ratio(ALL[:9]),
    "rolling statistics only": max_ratio(ALL[9:]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path, help="bench/ucr_label_free.py --scheme sweep outputs")
    args = ap.parse_args(argv)
    recs = {}
    for d in args.dirs:
        for f in sorted(d.glob("*.json")):
            r = json.loads(f.read_text())
            recs[r["index"]] = r
    groups = sorted({recording(r["name"]) for r in recs.values()})
    in_a = {i for i, r in recs.items() if groups.index(recording(r["name"])) % 2 == 0}
    print(f"{len(recs)} series, {len(groups)} recordings; A: {len(in_a)} series, B: {len(recs) - len(in_a)}")
    print(f"| rule | hits | group A | group B |\n|---|---|---|---|")
    for name, rule in RULES.items():
        hit = {i: rule(r["candidates"]) for i, r in recs.items()}
        a = sum(hit[i] for i in in_a)
        print(f"| {name} | {sum(hit.values())} | {a} | {sum(hit.values()) - a} |")
    print(f"| some candidate hits | {sum(r['any_hit'] for r in recs.values())} | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
