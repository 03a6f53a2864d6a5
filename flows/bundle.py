"""The MLflow pyfunc model of a CAPMix bundle, and logging (and registering) one.

A dataset has one detector per series, so the registered MLflow model is a BUNDLE: the whole
``models/`` directory (one saved detector per series, CAPMix or CoAD) logged as the ``models``
artifact of a pyfunc model (:class:`CAPMixBundleModel`).

The served model needs only plain columns (``series`` + the channel columns), so it works through
``mlflow models serve`` with a ``dataframe_split`` JSON or a CSV payload. The registry aliases and
the promotion gate are in :mod:`flows.promotion`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import Model, infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema

from capmix.data.canonical import RESERVED_COLUMNS, SERIES_COL
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.redaction import is_secret_key
from flows.provenance import clean_tags, dvc_lock_hashes, git_commit, train_params

__all__ = [
    "ARTIFACT_KEY",
    "CAPMixBundleModel",
    "download_bundle",
    "load_bundle",
    "log_bundle",
    "pip_requirements",
]

ARTIFACT_KEY = "models"  # context.artifacts[...] of the bundle directory
MODEL_NAME = "model"  # name of the logged model inside its run
#: The modules of ``flows`` a logged bundle ships (``code_paths``): the pickled model refers to
#: ``flows.bundle``, which imports ``flows.provenance``; not the Prefect flows beside them.
SHIPPED_MODULES = ("__init__.py", "bundle.py", "provenance.py")

# Pinned from installed metadata (the exact versions the bundle was trained/tested with).
REQUIREMENT_PACKAGES: tuple[str, ...] = (
    "mlflow", "cloudpickle", "torch", "numpy", "pandas", "scikit-learn", "scipy", "pydantic", "pyyaml", "numba",
    "pyarrow",
)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


# =============================================================================== the bundle model
def _detector_dirs(root: Path) -> list[Path]:
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()
    )


class BundleInputError(MlflowException, ValueError):
    """A request the bundle cannot score (wrong channels, unknown series, too few rows): served as
    HTTP 400 with this message; still a ``ValueError`` for Python callers."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def models_fingerprint(models_dir: str | Path) -> str:
    """SHA-256 over every detector folder's name and ``checksums.json`` (config, state, weights):
    equal for a retrained bundle that came out bit for bit the same, so it is not registered twice."""
    h = hashlib.sha256()
    for d in _detector_dirs(Path(models_dir)):
        h.update(d.name.encode() + b"\0" + (d / "checksums.json").read_bytes() + b"\0")
    return h.hexdigest()


def load_bundle(models_dir: str | Path, device: str | None = None) -> dict[str, Any]:
    """Every detector of a bundle directory, keyed by series name (= subdirectory name)."""
    root = Path(models_dir)
    if not root.is_dir():
        raise ValueError(
            f"model bundle {root} is not a directory; train the models first (it holds one folder per series)"
        )
    dirs = _detector_dirs(root)
    if not dirs:
        raise ValueError(
            f"model bundle {root} holds no saved detectors (no <series>/config.json); train the models first"
        )
    from capmix.detectors.registry import load_detector  # CAPMix or CoAD, as each model's config.json says

    return {d.name: load_detector(d, device=device) for d in dirs}


class CAPMixBundleModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper of a bundle: one CAPMix detector per series.

    Input: a DataFrame with a ``series`` column (optional when the bundle holds one series) and the
    channel columns; other columns (``timestamp``, ``label``, ``split``, ...) are ignored. The rows
    of each series are scored, in input order, as one contiguous stretch of that series (at least
    one window of points per series).

    Output: a DataFrame aligned with the input rows: ``series``, ``score`` (point anomaly score) and
    ``alarm`` (``score > threshold_`` of that series' detector).
    """

    def __init__(self) -> None:
        self.detectors: dict[str, CAPMixDetector] = {}
        self.channels: list[str] | None = None

    # ------------------------------------------------------------------ loading
    def load_context(self, context: Any) -> None:
        self.detectors = load_bundle(context.artifacts[ARTIFACT_KEY])
        cfg = getattr(context, "model_config", None) or {}
        self.channels = list(cfg["channels"]) if cfg.get("channels") else None

    @classmethod
    def from_dir(cls, models_dir: str | Path, channels: list[str] | None = None) -> CAPMixBundleModel:
        """Build the model straight from a bundle directory (no MLflow involved)."""
        model = cls()
        model.detectors = load_bundle(models_dir)
        model.channels = list(channels) if channels else None
        return model

    # ------------------------------------------------------------------ scoring
    def _series_names(self, df: pd.DataFrame) -> np.ndarray:
        only = next(iter(self.detectors)) if len(self.detectors) == 1 else None
        if SERIES_COL not in df.columns:
            if only is None:
                raise ValueError(
                    f"model_input has no '{SERIES_COL}' column, but this bundle holds {len(self.detectors)} series "
                    f"({self._known()}); add a '{SERIES_COL}' column naming the series of every row"
                )
            return np.full(len(df), only, dtype=object)
        col = df[SERIES_COL]
        missing = col.isna().to_numpy()
        names = col.astype(object).where(~missing, None).to_numpy(dtype=object)
        if missing.any():
            if only is None:
                raise ValueError(
                    f"{int(missing.sum())} rows have no '{SERIES_COL}' value "
                    f"(first: row {int(np.flatnonzero(missing)[0])}); "
                    "every row must name its series"
                )
            names[missing] = only
        names = np.array([str(n) for n in names], dtype=object)
        unknown = sorted(set(names) - set(self.detectors))
        if unknown:
            raise ValueError(
                f"unknown series {unknown[:5]}{' ...' if len(unknown) > 5 else ''}: this bundle holds "
                f"{len(self.detectors)} series ({self._known()}); score only series the bundle was trained on"
            )
        return names

    def _known(self, n: int = 5) -> str:
        names = list(self.detectors)
        return ", ".join(names[:n]) + (f", ... (+{len(names) - n})" if len(names) > n else "")

    def _channel_values(self, df: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        if self.channels:
            missing = [c for c in self.channels if c not in df.columns]
            if missing:
                raise ValueError(
                    f"model_input lacks channel columns {missing}; the bundle expects the channels "
                    f"{self.channels} (in any column order; other columns are ignored)"
                )
            channels = list(self.channels)
        else:
            channels = [c for c in df.columns if c not in RESERVED_COLUMNS]
            if not channels:
                raise ValueError(
                    f"model_input has no channel columns (only {list(df.columns)}); send one numeric column per channel"
                )
        try:
            values = df[channels].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"channel columns {channels} must be numeric: {exc}") from exc
        return channels, values

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        try:
            return self._predict(model_input)
        except ValueError as exc:
            # an MlflowException carries its message into the 400 body of `mlflow models serve`
            # (any other exception becomes a generic "unexpected error" there)
            raise BundleInputError(str(exc)) from exc

    def _predict(self, model_input: pd.DataFrame) -> pd.DataFrame:
        if not self.detectors:
            raise RuntimeError("CAPMixBundleModel has no detectors; load it with mlflow.pyfunc.load_model or from_dir")
        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        names = self._series_names(df)
        channels, values = self._channel_values(df)
        scores = np.empty(len(df), dtype=np.float64)
        alarms = np.zeros(len(df), dtype=bool)
        for name in pd.unique(names):
            rows = np.flatnonzero(names == name)
            det = self.detectors[name]
            if values.shape[1] != det.n_channels_:
                raise ValueError(
                    f"series {name!r}: got {values.shape[1]} channels {channels}, but its detector was trained on "
                    f"{det.n_channels_}; send the same channels, in the same order, as the training data"
                )
            try:
                s = det.decision_function(values[rows])
            except ValueError as exc:
                raise ValueError(f"series {name!r}: {exc}") from exc
            scores[rows] = s
            alarms[rows] = s > det.threshold_
        return pd.DataFrame({SERIES_COL: names.astype(str), "score": scores, "alarm": alarms}, index=df.index)


# =============================================================================== environment
def pip_requirements(packages: tuple[str, ...] = REQUIREMENT_PACKAGES) -> list[str]:
    """Exact pins of ``packages`` as installed here (never MLflow's auto-detection, which would pull a
    CUDA torch). A ``+cpu`` torch adds the PyTorch CPU wheel index so the pin can be installed."""
    reqs: list[str] = []
    for pkg in packages:
        try:
            version = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
        reqs.append(f"{pkg}=={version}")
        if pkg == "torch" and "+cpu" in version:
            reqs.insert(0, f"--extra-index-url {TORCH_CPU_INDEX}")
    return reqs


def _stage_code(dest: Path) -> list[str]:
    """Copy the ``capmix`` package and :data:`SHIPPED_MODULES` of ``flows`` for ``code_paths``."""
    import capmix

    pkg = Path(capmix.__file__).resolve().parent
    shutil.copytree(pkg, dest / "capmix", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "flows").mkdir()
    here = Path(__file__).resolve().parent
    for module in SHIPPED_MODULES:
        shutil.copy2(here / module, dest / "flows" / module)
    return [str(dest / "capmix"), str(dest / "flows")]


#: MLflow "models from code": the logged model is this script, not a pickled object (no CloudPickle
#: warning, and loading runs our shipped code instead of unpickling arbitrary bytes)
ENTRY_SCRIPT = """from mlflow.models import set_model

from flows.bundle import CAPMixBundleModel

set_model(CAPMixBundleModel())
"""


def _entry_script(dest: Path) -> str:
    path = dest / "capmix_bundle_model.py"
    path.write_text(ENTRY_SCRIPT)
    return str(path)


def _example(input_example: pd.DataFrame, model: CAPMixBundleModel, max_series: int) -> pd.DataFrame:
    """``series`` + channel columns of ``input_example``: at most ``max_series`` series, two windows each."""
    channels = [c for c in input_example.columns if c not in RESERVED_COLUMNS]
    cols = ([SERIES_COL] if SERIES_COL in input_example.columns else []) + channels
    ex = input_example[cols].copy()
    for c in channels:
        ex[c] = ex[c].astype(np.float64)
    if SERIES_COL not in ex.columns:
        det = next(iter(model.detectors.values()))
        return ex.head(2 * det.segments[0]).reset_index(drop=True)
    ex[SERIES_COL] = ex[SERIES_COL].astype(str)
    parts = []
    for name in pd.unique(ex[SERIES_COL])[:max_series]:
        det = model.detectors.get(name)
        n = 2 * det.segments[0] if det is not None else len(ex)
        parts.append(ex[ex[SERIES_COL] == name].head(n))
    return pd.concat(parts, ignore_index=True)


def _signature(example: pd.DataFrame, output: pd.DataFrame, single_series: bool) -> ModelSignature:
    sig = infer_signature(example, output)
    if single_series and SERIES_COL in example.columns:
        # one-series bundles may be called without a series column
        inputs = [
            ColSpec(c.type, c.name, required=False) if c.name == SERIES_COL else c for c in sig.inputs.inputs
        ]
        sig = ModelSignature(inputs=Schema(inputs), outputs=sig.outputs, params=sig.params)
    return sig


# =============================================================================== logging
@contextmanager
def _resumed_run(run_id: str, nested: bool) -> Iterator[Any]:
    """Make ``run_id`` the active run of this thread; leave its status as it was (a flow in another
    thread may still be running it: ending it here would mark it FINISHED under the flow's feet)."""
    client = MlflowClient()
    status = client.get_run(run_id).info.status
    with mlflow.start_run(run_id=run_id, nested=nested) as run:
        yield run
    if status == "RUNNING":
        client.update_run(run_id, status="RUNNING")


def _checked_model(
    models_dir: Path, input_example: pd.DataFrame, max_series: int
) -> tuple[CAPMixBundleModel, pd.DataFrame, ModelSignature]:
    """The bundle with its channels set, its reduced input example and its signature."""
    if not isinstance(input_example, pd.DataFrame) or input_example.empty:
        raise ValueError("input_example must be a non-empty DataFrame in the canonical form (series + channel columns)")
    model = CAPMixBundleModel.from_dir(models_dir)
    example = _example(input_example, model, max_series)
    channels = [c for c in example.columns if c != SERIES_COL]
    wrong = {n: d.n_channels_ for n, d in model.detectors.items() if d.n_channels_ != len(channels)}
    if wrong:
        raise ValueError(
            f"input_example has {len(channels)} channels {channels}, but detectors {list(wrong)[:5]} were trained on "
            f"{sorted(set(wrong.values()))}; pass an example from the dataset the bundle was trained on"
        )
    model.channels = channels
    output = model.predict(None, example)
    return model, example, _signature(example, output, single_series=len(model.detectors) == 1)


def _version_tags(
    model: CAPMixBundleModel,
    repo_dir: Path,
    flat_params: Mapping[str, str],
    tags: Mapping[str, Any] | None,
    metrics: Mapping[str, float] | None,
) -> dict[str, str]:
    return clean_tags(
        {
            **(tags or {}),
            "git.commit": git_commit(repo_dir),
            **{f"dvc.{path}": md5 for path, md5 in dvc_lock_hashes(repo_dir / "dvc.lock").items()},
            **flat_params,
            **{f"metrics.{k}": v for k, v in (metrics or {}).items()},
            "bundle.n_series": len(model.detectors),
            "bundle.channels": model.channels,
            "bundle.capmix_version": next(iter(model.detectors.values())).versions_.get("capmix", "unknown"),
        }
    )


def _run_context(run_id: str | None, run_name: str | None) -> tuple[Any, bool]:
    """The run to log into (see :func:`log_bundle`) and whether it is a new one of our own."""
    active = mlflow.active_run()
    if active is not None and (run_id is None or active.info.run_id == run_id):
        return nullcontext(active), False
    if run_id is not None:
        return _resumed_run(run_id, nested=active is not None), False
    return mlflow.start_run(run_name=run_name or "capmix-bundle"), True


def log_bundle(
    models_dir: str | Path,
    input_example: pd.DataFrame,
    registered_name: str | None,
    tags: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    repo_dir: str | Path | None = None,
    run_id: str | None = None,
    run_name: str | None = None,
    max_example_series: int = 3,
) -> ModelVersion | None:
    """Log ``models_dir`` as a pyfunc bundle (and register it when ``registered_name``).

    Logged into ``run_id`` when given (resumed; pass it from a Prefect task, whose thread does not
    see the flow's active run), else the active run, else a new run (``run_name``) that is ended
    afterwards; ``train.*`` params are logged as run params only in such a new run. The input
    example is reduced to ``series`` + channel columns (``max_example_series`` series, two windows
    each) and, together with the bundle's own prediction on it, gives the signature. The version
    (and the run) get tags: ``git.commit``, ``dvc.<out path>`` (md5 from ``<repo_dir>/dvc.lock``),
    flattened ``train.*`` params (``params``, else ``<repo_dir>/params.yaml``), ``metrics.*``,
    ``bundle.*`` and ``tags``; credential-like keys are dropped. ``metrics`` are also logged on the
    run and the logged model. Returns the new :class:`ModelVersion` (``None`` without
    ``registered_name``).
    """
    models_dir = Path(models_dir).resolve()
    repo_dir = Path(repo_dir or Path.cwd())
    model, example, signature = _checked_model(models_dir, input_example, max_example_series)
    flat_params = train_params(params, repo_dir)
    version_tags = _version_tags(model, repo_dir, flat_params, tags, metrics)
    log_params = {k: v for k, v in flat_params.items() if not is_secret_key(k)}

    run_ctx, own_run = _run_context(run_id, run_name)
    with run_ctx:
        mlflow.set_tags(version_tags)
        if own_run and log_params:  # an existing run may already hold these params
            mlflow.log_params(log_params)
        with tempfile.TemporaryDirectory(prefix="capmix-code-") as code_dir:
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=_entry_script(Path(code_dir)),
                artifacts={ARTIFACT_KEY: str(models_dir)},
                code_paths=_stage_code(Path(code_dir)),
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                model_config={"channels": model.channels},
                metadata={"capmix_bundle": {"n_series": len(model.detectors), "channels": model.channels}},
                params=log_params or None,
            )
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, model_id=info.model_id)

    if not registered_name:
        return None
    mv = mlflow.register_model(info.model_uri, registered_name, tags=version_tags)
    return MlflowClient().get_model_version(registered_name, mv.version)


def download_bundle(uri: str) -> tuple[Path, Model]:
    """Download a logged bundle (``models:/...``, ``runs:/...``) WITHOUT unpickling anything: its
    bundle directory, as the pyfunc flavor records it, and its MLmodel metadata."""
    local = Path(mlflow.artifacts.download_artifacts(uri))
    meta = Model.load(local)
    artifacts = meta.flavors.get("python_function", {}).get("artifacts") or {}
    rel = (artifacts.get(ARTIFACT_KEY) or {}).get("path")
    if rel is None:
        raise ValueError(f"{uri} is not a CAPMix bundle (no '{ARTIFACT_KEY}' artifact); pass a CAPMix model URI")
    return local / rel, meta
