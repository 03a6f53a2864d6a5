"""Project wall time vs workers from bench/bench_scale.py's measurements (docs/scale.md explains).

    python bench/project_scale.py [docs/scale_measurements.json]

Model, per dataset of N series on n single-core workers (every input measured on this machine):

    T(1) = S(N) + sum_i c_i                                  (the flow thread does everything)
    T(n) = start + S(N) + max( LPT_n({c_i + 3 o}),  3 N o )   (n > 1, Dask LocalCluster / cluster)

* c_i  per-series cost (augment + train + score) predicted from its length with the per-window
       rates measured on the sampled series of the same preset (torch on one thread);
* LPT_n  makespan of longest-first list scheduling of the c_i on n workers (independent tasks);
* o    Prefect task overhead per task through the Dask runner, 3 tasks per series; it did not
       shrink from 1 to 2 workers, so it is treated as central (flow process + Prefect API):
       3 N o is the floor below which no number of workers brings the wall time;
* S(N) the serial part in the flow process: S (the measured sequential default-data flow minus
       its series' costs) + (N - 4) x what a series adds there (MLflow metrics and its bundle
       files) + with registration, the champion's re-evaluation (every series scored in the flow);
* start  cluster start + worker warm-up (imports, numba cache load), fitted so that the model
       reproduces the measured 2-worker default-data flow.
"""

from __future__ import annotations

import heapq
import json
import statistics
import sys
from pathlib import Path

WORKERS = (1, 2, 8, 32, 128)


def lpt(costs: list[float], n: int) -> float:
    loads = [0.0] * n
    heapq.heapify(loads)
    for c in sorted(costs, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + c)
    return max(loads)


def rates(sample: list[dict]) -> dict[str, float]:
    """Per-unit costs from measured series: augment per training point, training per
    (training window x epoch), scoring per test point; the window density and mean epochs."""
    return {
        "augment_per_point": sum(r["augment_s"] for r in sample) / sum(r["n_train"] for r in sample),
        "train_per_window_epoch": sum(r["train_s"] for r in sample) / sum(r["n_train_windows"] * r["epochs"]
                                                                          for r in sample),
        "score_per_point": sum(r["score_s"] for r in sample) / sum(r["n_test"] for r in sample),
        "windows_per_point": sum(r["n_train_windows"] for r in sample) / sum(r["n_train"] for r in sample),
        "epochs": statistics.mean(r["epochs"] for r in sample),
    }


def predict(n_train: int, n_test: int, r: dict[str, float]) -> tuple[float, float]:
    """(whole per-series cost, its scoring part)."""
    score = r["score_per_point"] * n_test
    train = r["train_per_window_epoch"] * r["windows_per_point"] * n_train * r["epochs"]
    return r["augment_per_point"] * n_train + train + score, score


def project(costs: list[float], scores: list[float], m: dict, fit: dict, register: bool) -> dict[int, dict]:
    o = m["prefect_dask"]["per_task_s"]
    rate = 1.0 / o  # measured with empty tasks on 2 workers: the API/scheduler throughput
    n_series = len(costs)
    serial = fit["S"] + (n_series - fit["n_default"]) * fit["per_series_serial"] + (sum(scores) if register else 0.0)
    out = {}
    for n in WORKERS:
        start = fit["start"] if n > 1 else 0.0
        work = lpt([c + 3 * o for c in costs], n) if n > 1 else sum(costs)
        floor = 3 * n_series / rate if n > 1 else 0.0
        out[n] = {"wall_s": start + serial + max(work, floor), "work_s": work, "serial_s": serial,
                  "api_floor_s": floor, "start_s": start, "longest_series_s": max(costs)}
    return out


def fit_fixed(m: dict) -> dict:
    """S and start from the two measured default-data flows (the model reproduces both exactly)."""
    costs = [r["augment_s"] + r["train_s"] + r["score_s"] for r in m["default"]]
    o = m["prefect_dask"]["per_task_s"]
    flows = m["flows"]["default"]
    S = flows["sequential"]["wall_s"] - sum(costs)
    start = flows["dask"]["wall_s"] - S - lpt([c + 3 * o for c in costs], 2)
    ml = m["mlflow"].get("postgresql", m["mlflow"]["sqlite"])
    # what one more series adds in the flow process: its metrics batch and its share of the bundle upload
    per_series_serial = 2 * ml["log_metric_s"] + 4 * ml["log_artifact_s"]
    return {"S": S, "start": start, "per_series_serial": per_series_serial, "n_default": len(costs)}


def main(path: str = "docs/scale_measurements.json") -> int:
    m = json.loads(Path(path).read_text())
    fit = fit_fixed(m)
    print(f"serial part of the default flow S = {fit['S']:.1f} s; cluster start + worker warm-up = {fit['start']:.1f} s; "
          f"per-series serial {fit['per_series_serial'] * 1000:.0f} ms")
    if "ucr6" in m.get("flows", {}) and "ucr" in m:
        # check: predict the measured UCR-subset flows (8 epochs) from the UCR sample's rates
        r = dict(rates(m["ucr"]), epochs=8.0)
        lens = {x["name"]: x for x in m["ucr_lengths"]}
        pred = [predict(lens[f"{i:03d}"]["train_end"], lens[f"{i:03d}"]["length"] - lens[f"{i:03d}"]["train_end"], r)
                for i in range(1, 7)]
        proj = project([c for c, _ in pred], [s for _, s in pred], m, fit, register=False)
        meas = m["flows"]["ucr6"]
        print("\nmodel check, UCR 001-006 (8 epochs): | runner | measured | model |")
        print(f"| sequential | {meas['sequential']['wall_s']:.1f} s | {proj[1]['wall_s']:.1f} s |")
        print(f"| dask, 2 workers | {meas['dask']['wall_s']:.1f} s | {proj[2]['wall_s']:.1f} s |")

    tables = {}
    if "ucr" in m:
        r = rates(m["ucr"])
        pred = [predict(x["train_end"], x["length"] - x["train_end"], r) for x in m["ucr_lengths"]]
        tables["UCR, 250 series (benchmark: no registration)"] = (
            project([c for c, _ in pred], [s for _, s in pred], m, fit, register=False), r, pred)
    if "aiops" in m:
        r = rates(m["aiops"])
        # load_aiops: KPIs without a test file are split in half; the others train on the whole file
        pred = [predict(x["length"] // 2, x["length"] - x["length"] // 2, r) for x in m["aiops_lengths"]]
        tables["AIOps, 29 KPIs (nightly retraining, registration + champion re-evaluation)"] = (
            project([c for c, _ in pred], [s for _, s in pred], m, fit, register=True), r, pred)
    for title, (proj, r, pred) in tables.items():
        total = sum(c for c, _ in pred)
        print(f"\n{title}: sequential work {total / 60:.1f} min, longest series {max(c for c, _ in pred) / 60:.1f} min, "
              f"mean epochs {r['epochs']:.1f}, training {1 / r['train_per_window_epoch']:.0f} windows/s (1 thread)")
        print("| workers | wall time | parallel part (LPT) | serial part | start + warm-up | API floor | speed-up |")
        print("|---|---|---|---|---|---|---|")
        base = proj[1]["wall_s"]
        for n, row in proj.items():
            print(f"| {n} | {row['wall_s'] / 60:.1f} min | {row['work_s'] / 60:.1f} min | {row['serial_s']:.0f} s | "
                  f"{row['start_s']:.0f} s | {row['api_floor_s']:.0f} s | {base / row['wall_s']:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
