"""What orchestration costs: the training flow vs calling the same capmix functions directly.

    python bench/bench_flow_overhead.py [--params params.yaml]

Direct: ingest -> validate -> prepare (augment + revise) -> fit -> evaluate -> write metrics and the
same plots the flow draws (scores, score and DTW histograms, training curves), in one loop; what
the flow adds is orchestration and tracking (Prefect task states, MLflow params/metrics/artifacts). Flow: ``training_flow`` (registration off, caches refreshed so all work is redone), timed on
its second run so the one-off start of Prefect's local server is reported separately.
"""

from __future__ import annotations

import argparse
import time

from capmix.telemetry import switch_off

switch_off()


def direct(params_path: str) -> float:
    from capmix.config import detector_config, load_params
    from capmix.data.canonical import read_dataset, to_frame
    from capmix.detectors.capmix.detector import CAPMixDetector
    import numpy as np

    from capmix.pipeline import EvaluateConfig, evaluate_saved, write_evaluation
    from capmix.evaluation.plots import plot_dtw_histogram, plot_training_curves
    from capmix.data.validation import ValidationConfig, validate_frame

    t0 = time.perf_counter()
    p = load_params(params_path)
    cfg = detector_config(p)
    ecfg = EvaluateConfig.model_validate(p["evaluate"])
    series = read_dataset(p["dataset"]["path"])
    v = {k: x for k, x in p["validate"].items() if k != "out"}
    vcfg = ValidationConfig(kind="univariate" if series[0].n_channels == 1 else "multivariate", window=cfg.window,
                            require_labels=True, mode="train", **v)
    validate_frame(to_frame(series), vcfg, "reports/bench-validation").raise_for_failures()
    out = ".capmix_work/bench-direct"
    histories, dists, cutoffs = {}, [], []
    for s in series:
        det = CAPMixDetector(cfg)
        prepared = det.prepare(*s.train)
        det.fit_prepared(prepared).save(f"{out}/models/{s.name}")
        histories[s.name] = [e.__dict__ for e in det.history_]
        if prepared.revision is not None:
            dists.append(prepared.revision.distances)
            cutoffs.append(prepared.revision.cutoff)
    if dists:
        plot_dtw_histogram(np.concatenate(dists), float(np.mean(cutoffs)), f"{out}/plots/dtw_hist.png")
    plot_training_curves(histories, f"{out}/plots/training_curves.png")
    results, scores, thresholds = [], [], []
    for i, s in enumerate(series):
        res, thr, sc = evaluate_saved(s, f"{out}/models", ecfg, f"{out}/plots" if i < ecfg.max_plots else None)
        results.append(res)
        scores.append(sc)
        thresholds.append(thr)
    write_evaluation(results, ecfg, f"{out}/metrics", scores, [s.test[1] for s in series], thresholds,
                     f"{out}/plots")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    direct(args.params)  # warm: imports, DTW kernel, GX templates
    t_direct = min(direct(args.params) for _ in range(2))

    from flows.train import runner_for, training_flow
    from capmix.config import load_params

    flow = training_flow.with_options(task_runner=runner_for(load_params(args.params)))
    t0 = time.perf_counter()
    flow(params_path=args.params, register=False, refresh_cache=True)
    t_first = time.perf_counter() - t0
    runs = []
    for _ in range(2):
        t0 = time.perf_counter()
        flow(params_path=args.params, register=False, refresh_cache=True)
        runs.append(time.perf_counter() - t0)
    t_flow = min(runs)
    print(f"direct capmix calls          {t_direct:7.2f} s")
    print(f"training flow (warm server)  {t_flow:7.2f} s   ratio {t_flow / t_direct:.2f}x")
    print(f"first flow run incl. server  {t_first:7.2f} s")


if __name__ == "__main__":
    main()
