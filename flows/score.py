"""The batch scoring flow: load the champion bundle, validate new data, write point scores and alarms.

Run it:  python -m flows.score --input new.parquet --output scores.parquet [--params params.yaml]
         [--model-uri models:/capmix-default/3]

Input: a canonical Parquet file (``capmix.data.canonical.write_dataset``) or any Parquet/CSV table with a
``series`` column (optional for a one-series bundle) and one numeric column per channel; the
``timestamp``, ``split`` and ``label`` columns are optional (missing: positions, "test", <NA>). Every
row is scored; the rows of one series are scored, in input order, as one contiguous stretch.

The data is validated with the training-time Great Expectations suite in ``mode="score"`` with the
MODEL's channels, so data with other channels (names, count, order) stops the flow with a
:class:`~capmix.data.validation.DataValidationError` naming the expectations, before anything is scored.
Output (Parquet, or CSV for a ``.csv`` path, written atomically): ``series``, ``timestamp`` (when the
input has one), ``score``, ``alarm``. Each call is an MLflow run in the experiment
``<mlflow.experiment>-scoring`` (tags: model uri/version, input digest; metrics: n_points,
n_alarms, alarm_rate; the output as an artifact when it is small).
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from capmix.atomic import atomic_file, write_error
from capmix.params import Params, ValidateParams, load_params
from capmix.data.canonical import LABEL_COL, RESERVED_COLUMNS, SERIES_COL, SPLIT_COL, SPLIT_TEST, TIMESTAMP_COL
from capmix.data.validation import DataValidationError
from capmix.modelfiles import sha256_file
from flows.bundle import CAPMixBundleModel, download_bundle
from flows.locks import tag_flow_run_owner
from flows.train import setup_mlflow

#: Outputs up to this size are logged as an artifact of the scoring run (bigger ones: only their path).
MAX_ARTIFACT_BYTES = 20 * 1024 * 1024
CSV_SUFFIXES = (".csv",)
_MODELS_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?")

# the tasks pass models and frames in memory: nothing to cache or persist
IN_MEMORY = dict(cache_policy=NO_CACHE, persist_result=False)


def _champion_uri(p: Params) -> str:
    name = p.register.model_name
    return f"models:/{name}@champion"


def _resolve(uri: str) -> dict[str, str | None]:
    """Registry facts of a ``models:/`` URI; an alias is pinned to its version NOW, so the loaded model
    is the one recorded even if the alias moves meanwhile."""
    m = _MODELS_URI.fullmatch(uri)
    if m is None:  # runs:/..., a local path, ...: no registry version
        return {"uri": uri, "load_uri": uri, "name": None, "alias": None, "version": None}
    name, alias, version = m.group("name"), m.group("alias"), m.group("version")
    if alias is not None:
        client = mlflow.MlflowClient()
        try:
            version = str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            raise LookupError(
                f"{uri}: registered model {name!r} has no alias {alias!r} in {mlflow.get_registry_uri()}; "
                "train and register a model first (python -m flows.train) or pass --model-uri"
            ) from exc
    return {"uri": uri, "load_uri": f"models:/{name}/{version}", "name": name, "alias": alias, "version": version}


@task(name="load-model", retries=2, retry_delay_seconds=2, **IN_MEMORY)
def load_model(info: dict[str, str | None], default_window: int) -> dict[str, Any]:
    """The bundle (``info`` from :func:`_resolve`), its channels (training order) and its window.

    Loaded without unpickling anything: the version's files are downloaded, the MLmodel file is
    read as YAML, and every detector is loaded weights-only with its checksums verified
    (:meth:`CAPMixDetector.load`); MLflow's own pyfunc loader would unpickle ``python_model.pkl``.
    """
    uri = info["uri"]
    bundle, meta = download_bundle(info["load_uri"])
    pyfunc = meta.flavors.get("python_function", {})
    channels = list((pyfunc.get("model_config") or {}).get("channels") or [])
    if not channels:  # older bundles: the input signature (series + channels)
        schema = meta.get_input_schema()
        channels = [c for c in (schema.input_names() if schema is not None else []) if c not in RESERVED_COLUMNS]
    if not channels:
        raise ValueError(f"{uri}: the model records no channel names (model_config / signature); re-register it")
    model = CAPMixBundleModel.from_dir(bundle, channels)
    window = max(d.segments[0] for d in model.detectors.values())
    series = sorted(model.detectors)
    get_run_logger().info("loaded %s (version %s): channels %s, window %d", uri, info["version"], channels, window)
    return {**info, "model": model, "channels": channels, "window": window, "series": series,
            "run_id": meta.run_id}


def canonical_frame(raw: pd.DataFrame, single_series: str | None = None) -> pd.DataFrame:
    """The long form the GX suite checks: ``series, timestamp, split, label`` first (filled in when
    absent), then the other columns in their input order. Values are never changed or dropped: bad
    ones are for the validation to report."""
    df = raw.copy()
    df.columns = [str(c) for c in df.columns]
    if SERIES_COL not in df.columns and single_series is not None:
        df[SERIES_COL] = single_series  # a one-series bundle may be scored without a series column
    if SERIES_COL in df.columns and not df[SERIES_COL].isna().any():
        df[SERIES_COL] = df[SERIES_COL].astype("str")
    if TIMESTAMP_COL not in df.columns:
        if SERIES_COL in df.columns:  # positions within each series
            df[TIMESTAMP_COL] = df.groupby(SERIES_COL, sort=False).cumcount().astype(np.int64)
        else:
            df[TIMESTAMP_COL] = np.arange(len(df), dtype=np.int64)
    elif not (pd.api.types.is_datetime64_any_dtype(df[TIMESTAMP_COL])
              or pd.api.types.is_numeric_dtype(df[TIMESTAMP_COL])):
        try:  # CSV: ISO strings
            ts = pd.to_datetime(df[TIMESTAMP_COL])
            if isinstance(ts.dtype, pd.DatetimeTZDtype):
                ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
            df[TIMESTAMP_COL] = ts.astype("datetime64[ns]")
        except (TypeError, ValueError):
            pass  # left as it is: the timestamp type expectation names it
    elif isinstance(df[TIMESTAMP_COL].dtype, pd.DatetimeTZDtype):
        df[TIMESTAMP_COL] = df[TIMESTAMP_COL].dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    if SPLIT_COL not in df.columns:
        df[SPLIT_COL] = SPLIT_TEST
    if LABEL_COL not in df.columns:
        df[LABEL_COL] = pd.array([pd.NA] * len(df), dtype="Int8")
    elif pd.api.types.is_float_dtype(df[LABEL_COL]):  # CSV: a label column with blanks reads as float
        v = df[LABEL_COL].to_numpy(dtype=np.float64)
        known = v[~np.isnan(v)]
        if np.all(known == np.round(known)) and np.all(np.abs(known) < 128):
            df[LABEL_COL] = df[LABEL_COL].astype("Int8")
    others = [c for c in df.columns if c not in RESERVED_COLUMNS]
    return df[[*RESERVED_COLUMNS, *others]]


@task(name="read-input", retries=2, retry_delay_seconds=2, **IN_MEMORY)
def read_input(input_path: str, single_series: str | None) -> dict[str, Any]:
    path = Path(input_path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} not found (a canonical Parquet file or a CSV with a 'series' column)")
    from capmix.data.canonical import read_table

    raw = read_table(path)  # one clear error for an empty, header-only or unreadable file
    return {"frame": canonical_frame(raw, single_series), "has_timestamp": TIMESTAMP_COL in raw.columns,
            "digest": sha256_file(path), "format": path.suffix.lower().lstrip(".")}


@task(name="validate-input", **IN_MEMORY)
def validate_input(frame: pd.DataFrame, channels: list[str], window: int,
                   validate_cfg: ValidateParams) -> dict[str, Any]:
    """The training GX suite in ``mode="score"`` against the MODEL's channels; raises on failure.

    ``validate_cfg``: params ``validate`` (its sampling and imputation rules), with ``out`` the
    report folder (the flow puts it beside the output file)."""
    from capmix.data.validation import ValidationConfig, validate_frame

    validate_cfg = ValidateParams.model_validate(validate_cfg)
    cfg = ValidationConfig(
        kind="univariate" if len(channels) == 1 else "multivariate",
        channels=channels,
        window=window,
        # labels, where present, are not used for scoring: any anomaly ratio may be scored
        min_anomaly_ratio=0.0,
        max_anomaly_ratio=1.0,
        max_irregular_ratio=validate_cfg.max_irregular_ratio,
        impute=validate_cfg.impute,
        require_labels=False,
        mode="score",
    )
    report = validate_frame(frame, cfg, Path(validate_cfg.out))
    report.raise_for_failures()  # DataValidationError listing every failed expectation
    get_run_logger().info("scoring data passed validation: %s", report.statistics)
    return {"frame": report.frame, "json": str(report.json_path), "statistics": report.statistics}


@task(name="score", **IN_MEMORY)
def score(model: Any, frame: pd.DataFrame, channels: list[str], has_timestamp: bool) -> pd.DataFrame:
    """Point scores and alarms for every row (aligned with ``frame``)."""
    pred = model.predict(None, frame[[SERIES_COL, *channels]])
    out = pd.DataFrame({SERIES_COL: frame[SERIES_COL].astype("str").to_numpy()}, index=frame.index)
    if has_timestamp:
        out[TIMESTAMP_COL] = frame[TIMESTAMP_COL].to_numpy()
    out["score"] = pred["score"].to_numpy(dtype=np.float64)
    out["alarm"] = pred["alarm"].to_numpy(dtype=bool)
    if len(out) != len(frame):
        raise RuntimeError(f"the model returned {len(out)} rows for {len(frame)} input rows")
    return out.reset_index(drop=True)


@task(name="write-scores", retries=2, retry_delay_seconds=2, **IN_MEMORY)
def write_scores(scores: pd.DataFrame, output_path: str) -> str:
    """Parquet (CSV for ``.csv``), written to a temp file next to the target and renamed into place."""
    path = Path(output_path)
    with atomic_file(path) as tmp:
        if path.suffix.lower() in CSV_SUFFIXES:
            scores.to_csv(tmp, index=False)
        else:
            scores.to_parquet(tmp, index=False)
    return str(path)


@flow(name="capmix-score", log_prints=True)
def scoring_flow(input_path: str, output_path: str, params_path: str = "params.yaml",
                 model_uri: str | None = None) -> dict[str, Any]:
    """Score ``input_path`` with the champion (or ``model_uri``) and write ``output_path``."""
    log = get_run_logger()
    t0 = time.perf_counter()
    tag_flow_run_owner()  # a later run can then tell this one was killed (flows/locks.py)
    p = load_params(params_path)
    setup_mlflow(p)
    mlflow.set_experiment(p.mlflow.scoring)

    m = load_model(_resolve(model_uri or _champion_uri(p)), p.capmix_window())
    data = read_input(input_path, m["series"][0] if len(m["series"]) == 1 else None)
    frame = data["frame"]

    with mlflow.start_run(run_name=f"score-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        mlflow.set_tags({
            "capmix.run_type": "scoring",
            "model.uri": m["uri"],
            "model.name": m["name"] or "",
            "model.alias": m["alias"] or "",
            "model.version": m["version"] or "",
            "model.run_id": m["run_id"] or "",
            "input.path": str(Path(input_path).resolve()),
            "input.digest": data["digest"],
            "input.format": data["format"],
            "output.path": str(Path(output_path).resolve()),
        })
        try:
            # beside the output, never in validate.out (the DVC stage's folder: dvc status stays clean)
            report_dir = Path(output_path).resolve().with_name(Path(output_path).stem + ".validation")
            checked = validate_input(frame, m["channels"], m["window"],
                                     p.validate.model_copy(update={"out": str(report_dir)}))
        except DataValidationError as exc:  # the run ends FAILED; nothing is scored or written
            mlflow.set_tag("validation.passed", "False")
            if exc.report is not None and exc.report.json_path.is_file():
                mlflow.log_artifact(str(exc.report.json_path), "validation")
            raise
        mlflow.set_tag("validation.passed", "True")
        mlflow.log_artifact(checked["json"], "validation")
        frame = checked["frame"]  # imputed when validate.impute says so

        scores = score(m["model"], frame, m["channels"], data["has_timestamp"])
        written = write_scores(scores, output_path)
        n_points, n_alarms = len(scores), int(scores["alarm"].sum())
        metrics = {"n_points": float(n_points), "n_alarms": float(n_alarms),
                   "alarm_rate": n_alarms / n_points if n_points else 0.0,
                   "n_series": float(scores[SERIES_COL].nunique())}
        mlflow.log_metrics(metrics)
        size = Path(written).stat().st_size
        if size <= MAX_ARTIFACT_BYTES:
            mlflow.log_artifact(written, "scores")
        else:
            log.info("output is %.1f MiB: not logged as an artifact (only its path, tag output.path)", size / 2**20)

    summary = {"output": written, "run_id": run.info.run_id, "model_uri": m["uri"], "model_version": m["version"],
               "n_points": n_points, "n_alarms": n_alarms, "alarm_rate": metrics["alarm_rate"],
               "seconds": round(time.perf_counter() - t0, 1)}
    log.info("scored %d points of %s with %s (v%s): %d alarms -> %s", n_points, input_path, m["uri"],
             m["version"], n_alarms, written)
    return summary


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", required=True, help="canonical Parquet file, or a CSV/Parquet with series + channels")
    ap.add_argument("--output", required=True, help="scores file: .parquet (default) or .csv")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model-uri", default=None, help="default: models:/<register.model_name>@champion")
    ap.add_argument("--debug", action="store_true", help="show Prefect's tracebacks of a user error")
    args = ap.parse_args(argv)
    from flows.errors import run_main

    # user errors (DataValidationError, ParamsError, ModelFileError, ...): one line, exit 2
    code, summary = run_main(lambda: scoring_flow(input_path=args.input, output_path=args.output,
                                                  params_path=args.params, model_uri=args.model_uri),
                             args.debug, write_failure=lambda exc: write_error(exc, args.output))
    if code:
        return code
    print(f"{summary['n_points']} points scored with {summary['model_uri']} (v{summary['model_version']}): "
          f"{summary['n_alarms']} alarms ({summary['alarm_rate']:.2%}) -> {summary['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
