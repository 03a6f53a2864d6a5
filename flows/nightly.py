"""The nightly day: new data in, checked, versioned, maybe retrained, champion against challenger, alarms out.

Run it:  python -m flows.nightly [--params params.yaml]     (the deployment in prefect.yaml runs it nightly)

One ``capmix-nightly`` flow run takes every day file waiting in ``<nightly.workdir>/inbox`` (named
``<YYYY-MM-DD>.csv|parquet``) in day order, each as its own ``capmix-day`` subflow run:

1. **checks** (Great Expectations, the scoring-time suite): the history's channels, no NaN/inf,
   regular sampling, values inside the history's range (widened, params ``nightly.range_*``). A day
   that fails, or that breaks the duplicate/late rule, is **quarantined**: moved to ``quarantine/<day>/``
   with ``reason.txt``; nothing trains on it, the champion keeps serving, the run ends Failed with the
   reason (shown in the Prefect UI) and the MLflow day run records it;
2. **drift**: PSI of the day against the training window (capmix/data/drift.py);
3. **history**: the day appended (params ``nightly.duplicates``/``late``), then ``dvc add`` on the
   history: its hash is the data version, logged to MLflow. An unchanged history is no new version;
4. **retraining** (``nightly.retrain``): when there is no champion, on drift, or when the champion is
   ``max_model_age_days`` after the last training. The training flow runs as a subflow on the rolling window
   (``train_days``) and compares challenger and champion on the newest slice (real labels, or probe
   anomalies when the day has none), promoting only past ``nightly.margin``;
5. **batch scoring**: the champion scores the day; ``alarms/<day>.parquet`` holds the alarms.

One nightly run at a time per registry, on any machine: a Prefect global concurrency limit
(``nightly.concurrency_limit``, one slot) and, beside it, a file lock in the workdir. A run whose
process was killed is marked Crashed by the next one.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.states import Failed

from capmix.atomic import atomic_file, write_json
from capmix.data.canonical import TIMESTAMP_COL, write_dataset
from capmix.data.drift import DriftReport, drift_report
from capmix.data.history import (
    DayRejected,
    channel_ranges,
    channels_of,
    day_frame,
    day_of,
    merge_day,
    pending_days,
    read_day,
    read_history,
    rolling_dataset,
    window_before,
    write_history,
)
from capmix.data.probe import ProbeConfig
from capmix.data.validation import DataValidationError, ValidationConfig, validate_frame
from capmix.params import Params, derive_params, load_params
from flows import locks
from flows.train import runner_for, setup_mlflow, training_flow
from flows.versioning import add_version

__all__ = ["NightlyPaths", "day_flow", "nightly_flow", "read_days"]

FLOW_NAME = "capmix-nightly"
DAY_FLOW_NAME = "capmix-day"
QUARANTINED = "quarantined"


@dataclass(frozen=True)
class NightlyPaths:
    """The folders of ``nightly.workdir``."""

    root: Path

    inbox = property(lambda self: self.root / "inbox")            # day files waiting
    processed = property(lambda self: self.root / "processed")    # day files taken in
    quarantine = property(lambda self: self.root / "quarantine")  # day files refused, with reason.txt
    history = property(lambda self: self.root / "history")        # one Parquet per series (DVC-tracked)
    alarms = property(lambda self: self.root / "alarms")          # <day>.parquet: the champion's alarms
    runs = property(lambda self: self.root / "runs")              # <day>/: training dataset, params, models
    state = property(lambda self: self.root / "state")            # days.json: one record per day

    @classmethod
    def of(cls, p: Params) -> NightlyPaths:
        return cls(Path(p.nightly.workdir).resolve())


def read_days(paths: NightlyPaths) -> list[dict[str, Any]]:
    """The day records so far (oldest first)."""
    f = paths.state / "days.json"
    return json.loads(f.read_text()) if f.is_file() else []


def _record(paths: NightlyPaths, row: dict[str, Any]) -> None:
    rows = [r for r in read_days(paths) if r["day"] != row["day"]] + [row]
    write_json(sorted(rows, key=lambda r: r["day"]), paths.state / "days.json")


# ============================================================================================ checks
def check_day(day: pd.DataFrame, history: pd.DataFrame | None, p: Params, out: Path) -> dict[str, Any]:
    """The scoring-time GX suite on the day, against the history's channels and ranges; raises
    DataValidationError (the day is quarantined) on a failure."""
    channels = channels_of(history if history is not None else day)
    window = p.capmix_window()
    cfg = ValidationConfig(
        kind="univariate" if len(channels) == 1 else "multivariate", channels=channels, window=window,
        min_anomaly_ratio=0.0, max_anomaly_ratio=1.0,  # labels, where present, may flag any share
        max_irregular_ratio=p.validate.max_irregular_ratio, impute="none", require_labels=False, mode="score",
        ranges=channel_ranges(history, p.nightly.range_margin) if history is not None else None,
        range_mostly=p.nightly.range_mostly,
    )
    report = validate_frame(day_frame(day), cfg, out)
    report.raise_for_failures()
    return {"json": str(report.json_path), "expectations": report.statistics["evaluated_expectations"]}


def _quarantine(paths: NightlyPaths, day: str, file: Path, reason: str) -> Path:
    """Move the day file aside with its reason; a later file for the same day may be sent again."""
    target = paths.quarantine / day
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.move(str(file), target / file.name)
    (target / "reason.txt").write_text(reason + "\n")
    return target


# ========================================================================================== decision
def _champion(p: Params) -> str | None:
    from flows.promotion import CHAMPION, _alias_version

    client = mlflow.MlflowClient()
    try:
        return _alias_version(client, p.register.model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:  # no registered model yet
        return None


def _last_trained_day(rows: list[dict[str, Any]]) -> str | None:
    """The last day a challenger was trained (None: never, in this workdir)."""
    days = [r["day"] for r in rows if r.get("trained") == "yes"]
    return max(days) if days else None


def retrain_reason(p: Params, changed: bool, champion: str | None, drift: DriftReport, day: str,
                   last_trained: str | None) -> str | None:
    """Why this day trains a challenger (None: it does not). The one rule, params ``nightly.retrain``.

    The age rule counts from the last training, promoted or not: a champion that keeps winning is
    challenged every ``max_model_age_days``, not every day once it is that old."""
    cfg = p.nightly
    if not changed:
        return None
    if champion is None:
        return "no champion yet"
    if cfg.retrain == "daily":
        return "daily retraining"
    if drift.drifted:
        return f"drift: PSI {drift.max_psi:.2f} > {cfg.drift_threshold} ({drift.worst})"
    if last_trained is None:
        return "no challenger trained in this workdir yet (the champion was trained elsewhere)"
    age = (pd.Timestamp(day) - pd.Timestamp(last_trained)).days
    if age >= cfg.max_model_age_days:
        return f"last trained {age} days ago (nightly.max_model_age_days {cfg.max_model_age_days})"
    return None


def _day_params(p: Params, params_path: str, dataset: Path, run_dir: Path) -> Path:
    """The training flow's params for this day: the user's, with the day's dataset, output folder and margin."""
    return derive_params(params_path, run_dir / "params.yaml", {
        "dataset": {"name": "nightly", "path": str(dataset), "subset": None},
        "flow": {"out_dir": str(run_dir / "out")},
        "register": {"margin": p.nightly.margin},
        "validate": {"out": str(run_dir / "validation")},
    })


# ============================================================================================== day
@flow(name=DAY_FLOW_NAME, flow_run_name="day-{day}", log_prints=True)
def day_flow(params_path: str, day_file: str, day: str) -> Any:
    """One day file through checks, history, retraining and scoring (see the module docstring)."""
    log = get_run_logger()
    t0 = time.perf_counter()
    locks.tag_flow_run_owner()
    p = load_params(params_path)
    paths = NightlyPaths.of(p)
    file = Path(day_file)
    run_dir = paths.runs / day
    run_dir.mkdir(parents=True, exist_ok=True)
    row: dict[str, Any] = {"day": day, "file": file.name, "checks": "passed", "new_version": False,
                           "trained": "no", "registered": None, "promotion": None, "alarms": None}
    history = read_history(paths.history)
    setup_mlflow(p)  # the registry: which champion serves now
    before = _champion(p)
    row["champion_before"] = before

    try:
        frame = read_day(file)
        checked = check_day(frame, history, p, run_dir / "checks")
        merged = merge_day(history, frame, p.nightly.duplicates, p.nightly.late)
    except (DataValidationError, DayRejected, ValueError) as exc:
        reason = str(exc)
        where = _quarantine(paths, day, file, reason)
        row.update(checks=QUARANTINED, reason=reason, champion=before, version=_last_version(paths),
                   seconds=round(time.perf_counter() - t0, 1))
        _record(paths, row)
        _log_day(p, row, {}, run_dir)
        log.error("day %s quarantined (%s): %s", day, where, reason)
        create_markdown_artifact(_day_markdown(row), key=f"nightly-{day}", description=f"capmix nightly {day}")
        # the first failure, not only the headline, so the run list in the UI says what was wrong
        return Failed(message=f"day {day} quarantined: {' '.join(reason.splitlines()[:2])[:500]}")

    channels = channels_of(frame)
    start = frame[TIMESTAMP_COL].min()
    reference = window_before(history, start, p.nightly.train_days) if history is not None else frame.iloc[:0]
    drift = drift_report(reference, frame, channels, p.nightly.drift_bins, p.nightly.drift_threshold)
    row.update(drift_psi=None if not np.isfinite(drift.max_psi) else round(drift.max_psi, 4), drifted=drift.drifted,
               added=merged.added - merged.dropped, duplicates=merged.duplicates, late=merged.late)

    previous = _last_version(paths)
    if merged.changed:
        write_history(merged.frame, paths.history)
    # dvc add also when nothing changed today: a run killed between writing the history and versioning
    # it left a history newer than its last version, and this versions it (a no-op otherwise)
    version = add_version(paths.history)["md5"]
    row.update(version=version, new_version=version != previous)
    taken = _free(paths.processed / file.name)
    shutil.move(str(file), taken)

    reason = retrain_reason(p, row["new_version"], before, drift, day, _last_trained_day(read_days(paths)))
    row["retrain_reason"] = reason
    if reason is not None:
        row.update(_train(p, params_path, merged.frame, frame, run_dir, log))
    setup_mlflow(p)
    row["champion"] = _champion(p)
    if row["champion"] is not None:
        row["alarms"] = _score(p, params_path, paths, day, run_dir, taken)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    _record(paths, row)
    _log_day(p, row, {"drift": drift.values, "checks": checked}, run_dir)
    create_markdown_artifact(_day_markdown(row), key=f"nightly-{day}", description=f"capmix nightly {day}")
    log.info("day %s: %s", day, _one_line(row))
    return row


def _free(path: Path) -> Path:
    """``path``, or ``path`` with a counter when a file of that name was taken in before (a re-sent day)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, out = 1, path
    while out.exists():
        out = path.with_name(f"{path.name.split('.')[0]}.{n}{''.join(path.suffixes)}")
        n += 1
    return out


def _last_version(paths: NightlyPaths) -> str | None:
    dvc_file = paths.history.with_name(paths.history.name + ".dvc")
    if not dvc_file.is_file():
        return None
    return str(yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"])


def _train(p: Params, params_path: str, history: pd.DataFrame, day: pd.DataFrame, run_dir: Path,
           log: Any) -> dict[str, Any]:
    """The training flow on the day's rolling window; champion vs challenger on the newest slice."""
    cfg = p.nightly
    probe = ProbeConfig(n=cfg.probe_anomalies, seed=cfg.probe_seed)
    try:
        dataset, labels = rolling_dataset(history, day, cfg.train_days, cfg.holdout_fraction, p.capmix_window(), probe,
                                          cfg.max_gap)
    except ValueError as exc:  # not enough history yet: no challenger today
        log.warning("no challenger today: %s", exc)
        return {"trained": "no", "train_error": str(exc)}
    path = write_dataset(dataset, run_dir / "dataset.parquet", metadata={"name": "nightly", "labels": labels})
    params = _day_params(p, params_path, path, run_dir)
    # the training subflow uses the task runner params.yaml asks for (threads, or a Dask cluster)
    state = training_flow.with_options(task_runner=runner_for(p))(params_path=str(params), return_state=True)
    if state.is_failed() or state.is_crashed():
        log.error("training failed: %s", state.message)
        return {"trained": "failed", "train_error": state.message}
    summary = state.result()
    out = {"trained": "yes", "labels": sorted(set(labels.values())), "registered": summary.get("version"),
           "promotion": summary.get("promotion"), "promotion_reason": summary.get("reason"),
           "challenger_metrics": summary.get("metrics")}
    if out["registered"] is None:  # the training flow's evaluation gate stopped it (e.g. no anomaly in the slice)
        metric = p.register.metric
        out.update(promotion="not registered",
                   promotion_reason=f"evaluation gate: {metric} = {(summary.get('metrics') or {}).get(metric)} "
                                    f"(register.min_metric {p.register.min_metric})")
    return out


def _score(p: Params, params_path: str, paths: NightlyPaths, day: str, run_dir: Path, file: Path) -> int | None:
    """The champion scores the day; its alarms go to ``alarms/<day>.parquet``."""
    from flows.score import scoring_flow

    out = run_dir / "scores.parquet"
    state = scoring_flow(input_path=str(file), output_path=str(out), params_path=params_path, return_state=True)
    if not state.is_completed():
        get_run_logger().error("batch scoring failed: %s", state.message)
        return None
    scores = pd.read_parquet(out)
    alarms = scores[scores["alarm"]].reset_index(drop=True)
    target = paths.alarms / f"{day}.parquet"
    with atomic_file(target, suffix=".parquet") as tmp:
        alarms.to_parquet(tmp, index=False)
    return int(len(alarms))


def _log_day(p: Params, row: dict[str, Any], extra: dict[str, Any], run_dir: Path) -> None:
    """One MLflow run per day in ``<experiment>-nightly``: the data version, checks, drift, decision."""
    setup_mlflow(p, experiment=f"{p.mlflow.experiment}-nightly")
    with mlflow.start_run(run_name=f"day-{row['day']}"):
        mlflow.set_tags({"nightly.day": row["day"], "data.version": row.get("version") or "none",
                         "data.new_version": str(row["new_version"]), "checks": row["checks"],
                         "trained": row["trained"], "champion": row.get("champion") or "none",
                         **({"quarantine.reason": row["reason"][:5000]} if "reason" in row else {}),
                         **({"retrain.reason": row["retrain_reason"]} if row.get("retrain_reason") else {})})
        metrics = {k: float(row[k]) for k in ("drift_psi", "added", "duplicates", "late", "alarms")
                   if row.get(k) is not None}
        mlflow.log_metrics(metrics)
        write_json({**row, **extra}, run_dir / "day.json")
        mlflow.log_artifact(str(run_dir / "day.json"))
        alarms = NightlyPaths.of(p).alarms / f"{row['day']}.parquet"
        if row.get("alarms") is not None and alarms.is_file():
            mlflow.log_artifact(str(alarms), "alarms")


def _one_line(row: dict[str, Any]) -> str:
    return (f"checks {row['checks']}, version {str(row.get('version'))[:8]}{' (new)' if row['new_version'] else ''}, "
            f"trained {row['trained']}, champion v{row.get('champion')}, alarms {row.get('alarms')}")


def _day_markdown(row: dict[str, Any]) -> str:
    lines = [f"## capmix nightly, {row['day']}", "", "| | |", "|---|---|"]
    for k in ("checks", "reason", "version", "new_version", "drift_psi", "retrain_reason", "trained", "registered",
              "promotion", "promotion_reason", "champion", "alarms"):
        if row.get(k) is not None:
            lines.append(f"| {k} | {str(row[k]).replace('|', '/').splitlines()[0][:300]} |")
    return "\n".join(lines) + "\n"


# ========================================================================================== nightly
@flow(name=FLOW_NAME, log_prints=True)
def nightly_flow(params_path: str = "params.yaml") -> list[dict[str, Any]]:
    """Every waiting day file, in day order, one ``capmix-day`` subflow each."""
    log = get_run_logger()
    p = load_params(params_path)
    paths = NightlyPaths.of(p)
    for dead in locks.crash_dead_flow_runs(locks.CAPMIX_FLOWS):
        log.warning("flow run %s was left Running by a killed process: marked Crashed", dead)
    locks.tag_flow_run_owner()
    rows = []
    with locks.global_limit(p.nightly.concurrency_limit, log), locks.out_dir_lock(paths.root, log):
        for file in pending_days(paths.inbox):
            day = day_of(file)
            state = day_flow(params_path=params_path, day_file=str(file), day=day, return_state=True)
            rows.extend(r for r in read_days(paths) if r["day"] == day)
            if state.is_crashed():
                raise RuntimeError(f"day {day} crashed: {state.message}")
    if not rows:
        log.info("no day file waiting in %s", paths.inbox)
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--debug", action="store_true", help="show Prefect's tracebacks of a user error")
    args = ap.parse_args(argv)
    from flows.errors import USER_ERRORS, run_main

    code, rows = run_main(lambda: nightly_flow(params_path=args.params), args.debug, (*USER_ERRORS, TimeoutError))
    if code:
        return code
    for r in rows:
        print(f"{r['day']}: {_one_line(r)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
