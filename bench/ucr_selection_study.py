"""Offline study of label-free candidate-selection rules on recorded ``bench/ucr_label_free.py`` JSONs.

    OMP_NUM_THREADS=1 python bench/ucr_selection_study.py /tmp/ucr_lf/odd
    OMP_NUM_THREADS=1 python bench/ucr_selection_study.py --pools BASE_DIR ROLL_DIR MP_DIR

Reads ONLY the given directory (the odd half; the even half is held out for the final check).
Every rule sees the recorded label-free fields (kind, window, conf, conf_test, train_q =
training-part quantiles [0.99, 0.999, 1.0], peaks = top-5 (1-based position, value) after masking
+-max(window, 100), median, mad, series period); ``hit`` is used only to score a rule.
Rules with constants are cross-checked inside the half: constants chosen on index = 1 mod 4,
scored on index = 3 mod 4, and vice versa.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

EPS = 1e-9


def load(d: Path) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted(d.glob("*.json"))]
    for r in recs:
        for c in r["candidates"]:
            pk = c["peaks"]
            c["top"] = pk[0][1] if pk else -np.inf
            c["loc"] = pk[0][0] if pk else -1
            c["second"] = pk[1][1] if len(pk) > 1 else c["median"]
            c["q99"], c["q999"], c["qmax"] = c["train_q"]
        # period may be None (no period found): fall back to the smallest matrix-profile window
        mp = [c["window"] for c in r["candidates"] if c["kind"].startswith("mp")]
        r["p_eff"] = r["period"] or (min(mp) if mp else 100)
        for kind in {c["kind"] for c in r["candidates"]}:
            ws = sorted({c["window"] for c in r["candidates"] if c["kind"] == kind})
            for c in r["candidates"]:
                if c["kind"] == kind:
                    c["wrank"] = ws.index(c["window"])
    return recs


# ---- per-candidate scores (higher = pick) ---------------------------------------------------


def f_conf(c, r):
    return c["conf"]


def f_conf_test(c, r):
    return c["conf_test"]


def f_ratio(c, r):  # KDD Cup 5th place: top / second, measured above the median
    return (c["top"] - c["median"]) / max(c["second"] - c["median"], EPS)


def f_ratio_raw(c, r):
    return c["top"] / c["second"] if c["second"] > 0 else (np.inf if c["top"] > 0 else -np.inf)


def f_gap_mad(c, r):
    return (c["top"] - c["second"]) / max(c["mad"], EPS)


def f_top_mad(c, r):
    return (c["top"] - c["median"]) / max(c["mad"], EPS)


def f_top(c, r):  # robust-z value (units of training MAD)
    return c["top"]


def f_over_q999(c, r):
    return (c["top"] - c["median"]) / max(c["q999"] - c["median"], EPS)


def f_over_qmax(c, r):
    return (c["top"] - c["median"]) / max(c["qmax"] - c["median"], EPS)


def f_ratio_ref(c, r):  # ratio with the training 99.9% quantile as a competing peak
    sec = max(c["second"], c["q999"])
    return (c["top"] - c["median"]) / max(sec - c["median"], EPS)


def f_ratio_refmax(c, r):
    sec = max(c["second"], c["qmax"])
    return (c["top"] - c["median"]) / max(sec - c["median"], EPS)


def f_conf_refmax(c, r):
    sec = max(c["second"], c["qmax"])
    h = c["top"] - c["median"]
    return (c["top"] - sec) / h if h > 0 else 0.0


def f_log_ratio_sum(c, r):  # log(top/second) + log(top/q999), both above the median
    h = max(c["top"] - c["median"], EPS)
    return np.log(h / max(c["second"] - c["median"], EPS)) + np.log(h / max(c["q999"] - c["median"], EPS))


def f_min_ratio(c, r):
    return min(f_ratio(c, r), f_over_q999(c, r))


FEATURES = {
    "conf (today)": f_conf,
    "conf_test (no train ref)": f_conf_test,
    "ratio (top-med)/(2nd-med)": f_ratio,
    "ratio raw top/2nd": f_ratio_raw,
    "(top-2nd)/mad": f_gap_mad,
    "(top-med)/mad": f_top_mad,
    "top (robust z)": f_top,
    "(top-med)/(q999-med)": f_over_q999,
    "(top-med)/(qmax-med)": f_over_qmax,
    "ratio, 2nd=max(2nd,q999)": f_ratio_ref,
    "ratio, 2nd=max(2nd,qmax)": f_ratio_refmax,
    "conf, 2nd=max(2nd,qmax)": f_conf_refmax,
    "log ratio + log over q999": f_log_ratio_sum,
    "min(ratio, over q999)": f_min_ratio,
}


def pick_max(feat):
    def rule(r):
        v = [feat(c, r) for c in r["candidates"]]
        v = [x if np.isfinite(x) or x == np.inf else -np.inf for x in v]
        return int(np.argmax(v))  # ties: first candidate (generation order)

    return rule


def pick_rank(feats):
    """Mean rank across features (rank 0 = best); ties broken by the first feature."""

    def rule(r):
        cs = r["candidates"]
        ranks = np.zeros(len(cs))
        for f in feats:
            v = np.array([f(c, r) for c in cs], dtype=float)
            v = np.nan_to_num(v, nan=-np.inf)
            ranks += np.argsort(np.argsort(-v, kind="stable"), kind="stable")
        first = np.array([feats[0](c, r) for c in cs], dtype=float)
        order = np.lexsort((-first, ranks))
        return int(order[0])

    return rule


def tolerance(r, mode, k=1.0):
    if mode == "fixed":
        return k
    return max(k * r["p_eff"], 100)


def pick_vote(feat, mode="period", k=1.0, weighted=False, min_votes=1):
    """Cluster candidates by top location (within tolerance of the cluster's best member);
    pick the cluster with the most votes (or largest summed positive feature), then its best
    candidate by ``feat``. Ties between clusters: larger best ``feat``."""

    def rule(r):
        cs = r["candidates"]
        v = np.array([feat(c, r) for c in cs], dtype=float)
        v = np.nan_to_num(v, nan=-np.inf)
        tol = tolerance(r, mode, k)
        order = np.argsort(-v, kind="stable")
        best_key, best_i = None, None
        for i in order:  # each candidate as a cluster centre
            members = [j for j in range(len(cs)) if abs(cs[j]["loc"] - cs[i]["loc"]) <= tol]
            if weighted:
                w = float(np.sum(np.clip(v[members], 0, None)))
            else:
                w = len(members)
            key = (w, v[i])
            if best_key is None or key > best_key:
                best_key, best_i = key, int(i)
        if best_key[0] < min_votes:
            return int(order[0])
        return best_i

    return rule


def score(rule, recs):
    return sum(bool(r["candidates"][rule(r)]["hit"]) for r in recs)


def cv(make_rule, grid, recs):
    """Choose the constant on one quarter-fold, score on the other; both directions."""
    a = [r for r in recs if r["index"] % 4 == 1]
    b = [r for r in recs if r["index"] % 4 == 3]
    out = []
    for tr, te in ((a, b), (b, a)):
        s = [score(make_rule(g), tr) for g in grid]
        g = grid[int(np.argmax(s))]  # ties: first (smallest / simplest) grid value
        out.append((g, max(s), len(tr), score(make_rule(g), te), len(te)))
    full = [score(make_rule(g), recs) for g in grid]
    return out, dict(zip(grid, full))


def main(argv):
    d = Path(argv[0] if argv else "/tmp/ucr_lf/odd")
    assert "even" not in str(d), "honesty rule: study the odd half only"
    recs = load(d)
    n = len(recs)
    q1 = [r for r in recs if r["index"] % 4 == 1]
    q3 = [r for r in recs if r["index"] % 4 == 3]
    print(f"{n} series, oracle (any candidate hits) {sum(r['any_hit'] for r in recs)}")

    def row(name, rule):
        print(f"{name:55s} {score(rule, recs):4d}/{n}   q1 {score(rule, q1):3d}/{len(q1)}  q3 {score(rule, q3):3d}/{len(q3)}")

    print("\n-- argmax of one feature")
    for name, f in FEATURES.items():
        row(name, pick_max(f))

    print("\n-- rank aggregation (mean rank)")
    combos = {
        "rank(conf, ratio)": [f_conf, f_ratio],
        "rank(conf, over q999)": [f_conf, f_over_q999],
        "rank(ratio, over q999)": [f_ratio, f_over_q999],
        "rank(conf, ratio, over q999)": [f_conf, f_ratio, f_over_q999],
        "rank(conf, top)": [f_conf, f_top],
        "rank(conf, gap/mad)": [f_conf, f_gap_mad],
    }
    for name, fs in combos.items():
        row(name, pick_rank(fs))

    print("\n-- kind prior (global ordering by odd-half hit rate of each kind; per-kind hit counts)")
    kinds = {}
    for r in recs:
        for c in r["candidates"]:
            key = (c["kind"], c["wrank"])
            kinds.setdefault(key, []).append(c["hit"])
    for k, h in sorted(kinds.items(), key=lambda kv: -np.mean(kv[1])):
        print(f"   {k[0]:16s} w#{k[1]:<4} {sum(h):3d}/{len(h)}")

    print("\n-- agreement voting (clusters of top locations)")
    for fname, f in (("conf", f_conf), ("ratio_ref", f_ratio_ref), ("conf_refmax", f_conf_refmax)):
        for mode, k in (("fixed", 100), ("fixed", 200), ("period", 0.5), ("period", 1.0), ("period", 2.0)):
            for w in (False, True):
                row(f"vote[{fname}] tol={mode}:{k} {'weighted' if w else 'count'}", pick_vote(f, mode, k, w))
    for fname, f in (("conf", f_conf), ("ratio_ref", f_ratio_ref)):
        for m in (2, 3, 4):
            row(f"vote[{fname}] tol=period:1 count, min_votes={m}", pick_vote(f, "period", 1.0, False, m))

    print("\n-- gated: vote only when the best feature is below a threshold t (cv over t)")

    def gated(t, f=f_conf):
        base, vote = pick_max(f), pick_vote(f, "period", 1.0, False)

        def rule(r):
            b = base(r)
            return b if f(r["candidates"][b], r) >= t else vote(r)

        return rule

    grid = [0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0]
    out, full = cv(gated, grid, recs)
    print("   full odd per t:", full)
    for g, s_tr, n_tr, s_te, n_te in out:
        print(f"   chosen t={g} ({s_tr}/{n_tr} on fit quarter) -> {s_te}/{n_te} on the other quarter")

    print("\n-- reference quantile weight: 2nd = max(2nd, med + a*(q999-med)), pick max conf (cv over a)")

    def refw(a):
        def f(c, r):
            sec = max(c["second"], c["median"] + a * (c["q999"] - c["median"]))
            h = c["top"] - c["median"]
            return (c["top"] - sec) / h if h > 0 else 0.0

        return pick_max(f)

    grid = [0.0, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0]
    out, full = cv(refw, grid, recs)
    print("   full odd per a:", full)
    for g, s_tr, n_tr, s_te, n_te in out:
        print(f"   chosen a={g} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")

    print("\n-- vote tolerance k*period (cv over k), count votes, ties by conf")
    grid = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0]
    out, full = cv(lambda k: pick_vote(f_conf, "period", k, False), grid, recs)
    print("   full odd per k:", full)
    for g, s_tr, n_tr, s_te, n_te in out:
        print(f"   chosen k={g} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")
    return 0




# ---- second round: peak-list variants, kind pools / weights ----------------------------------

GROUP = {"std_diff": "roll", "ptp_diff": "roll", "mp_novelty": "mpz", "mp_discord": "mpz",
         "mp_raw_novelty": "mpraw", "mp_raw_discord": "mpraw"}


def conf_far(k, use_ref=True):
    """conf with the second peak = highest recorded peak farther than k*max(window,100) from the
    top (twin peaks of one anomaly do not compete); falls back to the last recorded peak."""

    def f(c, r):
        pk = c["peaks"]
        if len(pk) < 2:
            return 0.0
        ex = max(c["window"], 100)
        far = [v for i, v in pk[1:] if abs(i - pk[0][0]) > k * ex]
        sec = far[0] if far else pk[-1][1]
        if use_ref:
            sec = max(sec, c["q999"])
        h = c["top"] - c["median"]
        return (c["top"] - sec) / h if h > 0 else 0.0

    return f


def conf_nth(n):
    def f(c, r):
        pk = c["peaks"]
        sec = pk[min(n, len(pk) - 1)][1]
        sec = max(sec, c["q999"])
        h = c["top"] - c["median"]
        return (c["top"] - sec) / h if h > 0 else 0.0

    return f


def pool(kinds_ok):
    def rule(r):
        cs = r["candidates"]
        v = [c["conf"] if kinds_ok(c) else -np.inf for c in cs]
        if not np.isfinite(max(v)):
            v = [c["conf"] for c in cs]
        return int(np.argmax(v))

    return rule


def group_weight(w, group):
    """conf + w for candidates of one kind group (additive bonus; conf is bounded above by 1)."""

    def rule(r):
        cs = r["candidates"]
        return int(np.argmax([c["conf"] + (w if GROUP[c["kind"]] == group else 0.0) for c in cs]))

    return rule


def round2(recs):
    n = len(recs)
    q1 = [r for r in recs if r["index"] % 4 == 1]
    q3 = [r for r in recs if r["index"] % 4 == 3]

    def row(name, rule):
        print(f"{name:55s} {score(rule, recs):4d}/{n}   q1 {score(rule, q1):3d}/{len(q1)}  q3 {score(rule, q3):3d}/{len(q3)}")

    print("\n-- second peak variants")
    for k in (1, 2, 3, 5):
        row(f"conf, 2nd = first peak beyond {k}*excl, ref q999", pick_max(conf_far(k)))
        row(f"conf, 2nd = first peak beyond {k}*excl, no ref", pick_max(conf_far(k, False)))
    for m in (2, 3, 4):
        row(f"conf, 2nd = peak #{m + 1} (of 5), ref q999", pick_max(conf_nth(m)))

    print("\n-- candidate pools (argmax conf within)")
    row("mp only", pool(lambda c: c["kind"].startswith("mp")))
    row("mp z-normalised only", pool(lambda c: GROUP[c["kind"]] == "mpz"))
    row("no raw mp", pool(lambda c: GROUP[c["kind"]] != "mpraw"))
    row("shortest window per kind only (x1 mp, x0.5 roll)", pool(lambda c: c["wrank"] == 0))
    row("discords + rolling", pool(lambda c: "novelty" not in c["kind"]))
    row("novelty + rolling", pool(lambda c: "discord" not in c["kind"]))
    row("no std_diff", pool(lambda c: c["kind"] != "std_diff"))

    print("\n-- additive group bonus on conf (cv over w)")
    grid = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3]
    for g in ("roll", "mpz", "mpraw"):
        out, full = cv(lambda w: group_weight(w, g), grid, recs)
        print(f"   group {g}: full odd per w: {full}")
        for gg, s_tr, n_tr, s_te, n_te in out:
            print(f"      chosen w={gg} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")
        out, full = cv(lambda w: group_weight(-w, g), grid, recs)
        print(f"   group {g} penalty: full odd per w: {full}")
        for gg, s_tr, n_tr, s_te, n_te in out:
            print(f"      chosen w={gg} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")

    print("\n-- ref quantile choice (2nd = max(2nd, q)), conf")
    for name, key in (("q99", "q99"), ("q999 (today)", "q999"), ("qmax", "qmax")):
        def f(c, r, key=key):
            sec = max(c["second"], c[key])
            h = c["top"] - c["median"]
            return (c["top"] - sec) / h if h > 0 else 0.0

        row(f"conf with ref {name}", pick_max(f))


def round3(recs):
    """Paired comparison with today's rule, and the leading variants' cross-check."""
    base = pick_max(f_conf)
    no_raw = pool(lambda c: GROUP[c["kind"]] != "mpraw")

    def far_no_raw(k):
        f = conf_far(k)

        def rule(r):
            cs = r["candidates"]
            v = [f(c, r) if GROUP[c["kind"]] != "mpraw" else -np.inf for c in cs]
            return int(np.argmax(v))

        return rule

    def raw_pen(w):
        def rule(r):
            cs = r["candidates"]
            return int(np.argmax([c["conf"] - (w if GROUP[c["kind"]] == "mpraw" else 0.0) for c in cs]))

        return rule

    rules = {
        "no raw mp": no_raw,
        "conf_far k=2": pick_max(conf_far(2)),
        "conf_far k=2 + no raw mp": far_no_raw(2),
        "raw mp penalty 0.05": raw_pen(0.05),
        "shortest window per kind": pool(lambda c: c["wrank"] == 0),
    }
    n = len(recs)
    q1 = [r for r in recs if r["index"] % 4 == 1]
    q3 = [r for r in recs if r["index"] % 4 == 3]
    print("\n-- paired vs today (series gained / lost)")
    for name, rule in rules.items():
        gain = [r["index"] for r in recs if recs and r["candidates"][rule(r)]["hit"] and not r["candidates"][base(r)]["hit"]]
        lost = [r["index"] for r in recs if not r["candidates"][rule(r)]["hit"] and r["candidates"][base(r)]["hit"]]
        print(f"   {name:30s} {score(rule, recs)}/{n} (q1 {score(rule, q1)} q3 {score(rule, q3)}) +{len(gain)} {gain} -{len(lost)} {lost}")
    print("\n-- cv over k for conf_far (k in 1,2,3,5)")
    out, full = cv(lambda k: pick_max(conf_far(k)), [1, 2, 3, 5], recs)
    print("   full:", full)
    for g, s_tr, n_tr, s_te, n_te in out:
        print(f"   chosen k={g} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")
    out, full = cv(far_no_raw, [1, 2, 3, 5], recs)
    print("   no raw mp, full:", full)
    for g, s_tr, n_tr, s_te, n_te in out:
        print(f"   chosen k={g} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")
    out, full = cv(raw_pen, [0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 10.0], recs)
    print("   raw mp penalty, full:", full)
    for g, s_tr, n_tr, s_te, n_te in out:
        print(f"   chosen w={g} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")




def round4(recs):
    """conf_far(2) with a raw-matrix-profile penalty w (cv over w)."""

    def rule_w(w):
        f = conf_far(2)

        def rule(r):
            cs = r["candidates"]
            return int(np.argmax([f(c, r) - (w if GROUP[c["kind"]] == "mpraw" else 0.0) for c in cs]))

        return rule

    out, full = cv(rule_w, [0.0, 0.02, 0.05, 0.1, 0.2, 0.3], recs)
    print("\n-- conf_far k=2 + raw mp penalty w, full:", full)
    for g, s_tr, n_tr, s_te, n_te in out:
        print(f"   chosen w={g} ({s_tr}/{n_tr}) -> {s_te}/{n_te}")


# ---- candidate pools: several recorded runs of one half merged ------------------------------


def load_merged(dirs: list[Path]) -> list[dict]:
    """Candidates of several ``ucr_label_free.py`` runs of the same series, merged (first run wins a
    duplicate kind and window); each candidate keyed by (kind, nearest window multiple of the period)."""
    recs, by = None, {}
    for d in dirs:
        rs = load(d)
        if recs is None:
            recs, by = rs, {r["index"]: r for r in rs}
            continue
        for r in rs:
            b = by[r["index"]]
            have = {(c["kind"], c["window"]) for c in b["candidates"]}
            b["candidates"] += [c for c in r["candidates"] if (c["kind"], c["window"]) not in have]
    for r in recs:
        for c in r["candidates"]:
            mult = min((0.25, 0.5, 1, 2, 4), key=lambda m: abs(np.log(c["window"] / (m * r["p_eff"]))))
            c["key"] = (c["kind"], mult)
    return recs


def pool_hits(recs: list[dict], keys: set, feat=f_conf) -> int:
    n = 0
    for r in recs:
        cs = [c for c in r["candidates"] if c["key"] in keys]
        n += bool(cs) and bool(cs[int(np.argmax([feat(c, r) for c in cs]))]["hit"])
    return n


def pools(dirs: list[Path]) -> None:
    """The candidate pools compared for the ucr preset (docs/results.md): the base set, without the
    raw (non-normalised) joins, with inverse rolling statistics, with more join windows, smoothed joins.
    ``dirs``: a run of the base set, one of every rolling kind on 0.25-4 periods, one of the normalised
    joins on 0.5-4 periods with ``--smooth 0.5 1`` (commands in the results)."""
    assert not any("even" in str(d) for d in dirs), "honesty rule: study the odd half only"
    recs = load_merged(dirs)
    q1 = [r for r in recs if r["index"] % 4 == 1]
    q3 = [r for r in recs if r["index"] % 4 == 3]
    roll = {(k, m) for k in ("std_diff", "ptp_diff") for m in (0.5, 1, 2)}
    mp = lambda kinds, mults: {(k, m) for k in kinds for m in mults}  # noqa: E731
    norm, raw = ("mp_novelty", "mp_discord"), ("mp_raw_novelty", "mp_raw_discord")
    sm = lambda s: tuple(f"{k}_sm{s}" for k in norm)  # noqa: E731
    inv = mp(("std_diff_inv", "std_inv"), (2, 4))
    base = roll | mp(norm + raw, (1, 2))
    cands = {
        "base (the ucr preset)": base,
        "base + std_diff_inv,std_inv x 2,4": base | inv,
        "base + every inverse kind x 2,4": base | mp(("std_diff_inv", "ptp_diff_inv", "std_inv", "ptp_inv"), (2, 4)),
        "base + std_diff_inv,std_inv x 1,2,4": base | mp(("std_diff_inv", "std_inv"), (1, 2, 4)),
        "no raw joins": roll | mp(norm, (1, 2)),
        "no raw + inv": roll | mp(norm, (1, 2)) | inv,
        "no raw + inv, joins x 0.5,1,2": roll | mp(norm, (0.5, 1, 2)) | inv,
        "no raw + inv, joins x 1,2,4": roll | mp(norm, (1, 2, 4)) | inv,
        "no raw + inv, joins smoothed 0.5 (chosen)": roll | mp(sm(0.5), (1, 2)) | inv,
        "no raw + inv, joins smoothed 1": roll | mp(sm(1), (1, 2)) | inv,
        "no raw + inv, joins raw and smoothed 0.5": roll | mp(norm + sm(0.5), (1, 2)) | inv,
    }
    print(f"\n-- candidate pools, max conf ({len(recs)} series; q1 / q3 = index 1 / 3 mod 4)")
    for name, keys in cands.items():
        orc = sum(any(c["hit"] for c in r["candidates"] if c["key"] in keys) for r in recs)
        print(f"{name:45s} {pool_hits(recs, keys):4d}  q1 {pool_hits(q1, keys):3d}  q3 {pool_hits(q3, keys):3d}  any {orc}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--pools"]:
        pools([Path(a) for a in sys.argv[2:]])
        sys.exit(0)
    main(sys.argv[1:])
    _recs = load(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ucr_lf/odd"))
    round2(_recs)
    round3(_recs)
    round4(_recs)
