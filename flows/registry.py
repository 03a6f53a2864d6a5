"""MLflow model registry for CAPMix bundles: log, register, gate, promote, roll back.

A dataset has one CAPMix detector per series, so the registered MLflow model is a BUNDLE: the whole
``models/`` directory (one saved :class:`~capmix.detectors.capmix.detector.CAPMixDetector` per series plus
``summary.json``) logged as the ``models`` artifact of a pyfunc model (:class:`CAPMixBundleModel`).

Aliases, never stages (deprecated in MLflow 3):

* ``challenger``: the latest candidate that went through :func:`promote_if_better`;
* ``champion``: what serving loads (``models:/<name>@champion``, see :func:`load_champion`).

Every champion move (gate, manual :func:`promote`, :func:`rollback`) is appended to the JSON list in
the registered-model tag ``champion.history`` (entries ``{version, from, at, reason, action}``), so
the registry itself says who was champion when and why; :func:`rollback` walks that history.

The served model needs only plain columns (``series`` + the channel columns), so it works through
``mlflow models serve`` with a ``dataframe_split`` JSON or a CSV payload.
"""

from __future__ import annotations

import os

# Set before mlflow is imported: no usage telemetry may leave this machine.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import importlib.metadata
import inspect
import json
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import yaml
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.models.signature import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, Schema

from capmix.data.canonical import RESERVED_COLUMNS, SERIES_COL
from capmix.detectors.capmix.detector import CAPMixDetector

__all__ = [
    "CHAMPION",
    "CHALLENGER",
    "HISTORY_TAG",
    "CAPMixBundleModel",
    "PromotionDecision",
    "champion_history",
    "dvc_lock_hashes",
    "git_commit",
    "load_bundle",
    "load_champion",
    "log_bundle",
    "pip_requirements",
    "promote",
    "promote_if_better",
    "rollback",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion.history"
HISTORY_MAX_ENTRIES = 500  # registered-model tag values are capped at 100k characters

ARTIFACT_KEY = "models"  # context.artifacts[...] of the bundle directory
MODEL_NAME = "model"  # name of the logged model inside its run

# Pinned from installed metadata (the exact versions the bundle was trained/tested with).
REQUIREMENT_PACKAGES: tuple[str, ...] = (
    "mlflow",
    "cloudpickle",
    "torch",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pydantic",
    "pyyaml",
    "numba",
    "pyarrow",
)
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|credential|auth|private[_-]?key|access[_-]?key|session",
    re.IGNORECASE,
)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_BAD_TAG_CHARS = re.compile(r"[^/\w.\- ]")


# =============================================================================== the bundle model
def _detector_dirs(root: Path) -> list[Path]:
    return sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "config.json").is_file()
    )


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


# =============================================================================== provenance
def git_commit(repo_dir: str | Path | None = None) -> str:
    """HEAD commit of ``repo_dir`` (``CAPMIX_GIT_COMMIT`` overrides it, e.g. in CI); "unknown" if none."""
    if env := os.environ.get("CAPMIX_GIT_COMMIT"):
        return env.strip()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=str(repo_dir or Path.cwd()),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", sha) else "unknown"


def dvc_lock_hashes(lock_path: str | Path) -> dict[str, str]:
    """``{out path: md5}`` of every stage output in a ``dvc.lock`` (empty if the file is absent)."""
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text()) or {}
    hashes: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            path, md5 = out.get("path"), out.get("md5") or out.get("etag") or out.get("checksum")
            if path and md5:
                hashes[str(path)] = str(md5)
    return hashes


def _flatten(d: Mapping[str, Any], prefix: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            flat.update(_flatten(v, key))
        else:
            flat[key] = json.dumps(v) if isinstance(v, (list, tuple)) or v is None else str(v)
    return flat


def train_params(params: Mapping[str, Any] | None, repo_dir: str | Path | None = None) -> dict[str, str]:
    """Flattened ``train.*`` params: from ``params`` (whole params.yaml dict or its ``train`` section),
    else from ``<repo_dir>/params.yaml``; empty when neither exists."""
    if params is None:
        path = Path(repo_dir or Path.cwd()) / "params.yaml"
        if not path.is_file():
            return {}
        params = yaml.safe_load(path.read_text()) or {}
    section = params.get("train", params) if isinstance(params.get("train"), Mapping) else params
    return _flatten(section, "train")


def _is_secret(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def _clean_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    """Valid MLflow tag keys/values with anything credential-like removed."""
    clean: dict[str, str] = {}
    for k, v in tags.items():
        if v is None or _is_secret(str(k)):
            continue
        key = _BAD_TAG_CHARS.sub("_", str(k))[:250]
        if isinstance(v, str):
            value = v
        elif isinstance(v, (dict, list, tuple)):
            value = json.dumps(v, default=str)
        else:
            value = str(v)
        clean[key] = _URL_USERINFO.sub(r"\g<scheme>***@", value)[:5000]
    return clean


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
    """Copy the ``capmix`` package and this module (as ``flows/registry.py``) for ``code_paths``.

    The pickled :class:`CAPMixBundleModel` refers to ``flows.registry``, so the served model needs that
    module; only it is shipped (``flows`` as a namespace package), not the Prefect flows beside it.
    """
    import capmix

    pkg = Path(capmix.__file__).resolve().parent
    shutil.copytree(pkg, dest / "capmix", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (dest / "flows").mkdir()
    shutil.copy2(Path(__file__).resolve(), dest / "flows" / "registry.py")
    return [str(dest / "capmix"), str(dest / "flows")]


def _example(input_example: pd.DataFrame, model: CAPMixBundleModel, max_series: int) -> pd.DataFrame:
    """``series`` + channel columns of ``input_example``: at most ``max_series`` series, two windows each."""
    channels = [c for c in input_example.columns if c not in RESERVED_COLUMNS]
    cols = ([SERIES_COL] if SERIES_COL in input_example.columns else []) + channels
    ex = input_example[cols].copy()
    for c in channels:
        ex[c] = ex[c].astype(np.float64)
    if SERIES_COL not in ex.columns:
        det = next(iter(model.detectors.values()))
        return ex.head(2 * det.config.window).reset_index(drop=True)
    ex[SERIES_COL] = ex[SERIES_COL].astype(str)
    parts = []
    for name in pd.unique(ex[SERIES_COL])[:max_series]:
        det = model.detectors.get(name)
        n = 2 * det.config.window if det is not None else len(ex)
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
    if not isinstance(input_example, pd.DataFrame) or input_example.empty:
        raise ValueError("input_example must be a non-empty DataFrame in the canonical form (series + channel columns)")

    model = CAPMixBundleModel.from_dir(models_dir)
    example = _example(input_example, model, max_example_series)
    channels = [c for c in example.columns if c != SERIES_COL]
    wrong = {n: d.n_channels_ for n, d in model.detectors.items() if d.n_channels_ != len(channels)}
    if wrong:
        raise ValueError(
            f"input_example has {len(channels)} channels {channels}, but detectors {list(wrong)[:5]} were trained on "
            f"{sorted(set(wrong.values()))}; pass an example from the dataset the bundle was trained on"
        )
    model.channels = channels
    output = model.predict(None, example)
    signature = _signature(example, output, single_series=len(model.detectors) == 1)

    flat_params = train_params(params, repo_dir)
    version_tags = _clean_tags(
        {
            **(tags or {}),
            "git.commit": git_commit(repo_dir),
            **{f"dvc.{path}": md5 for path, md5 in dvc_lock_hashes(repo_dir / "dvc.lock").items()},
            **flat_params,
            **{f"metrics.{k}": v for k, v in (metrics or {}).items()},
            "bundle.n_series": len(model.detectors),
            "bundle.channels": channels,
            "bundle.capmix_version": next(iter(model.detectors.values())).versions_.get("capmix", "unknown"),
        }
    )
    log_params = {k: v for k, v in flat_params.items() if not _is_secret(k)}

    active = mlflow.active_run()
    if active is not None and (run_id is None or active.info.run_id == run_id):
        run_ctx: Any = nullcontext(active)
    elif run_id is not None:
        run_ctx = _resumed_run(run_id, nested=active is not None)
    else:
        run_ctx = mlflow.start_run(run_name=run_name or "capmix-bundle")
    own_run = active is None and run_id is None
    with run_ctx:
        mlflow.set_tags(version_tags)
        if own_run and log_params:  # an existing run may already hold these params
            mlflow.log_params(log_params)
        with tempfile.TemporaryDirectory(prefix="capmix-code-") as code_dir:
            info = mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=CAPMixBundleModel(),
                artifacts={ARTIFACT_KEY: str(models_dir)},
                code_paths=_stage_code(Path(code_dir)),
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(),
                model_config={"channels": channels},
                metadata={"capmix_bundle": {"n_series": len(model.detectors), "channels": channels}},
                params=log_params or None,
            )
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, model_id=info.model_id)

    if not registered_name:
        return None
    mv = mlflow.register_model(info.model_uri, registered_name, tags=version_tags)
    return MlflowClient().get_model_version(registered_name, mv.version)


# =============================================================================== promotion
@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of :func:`promote_if_better` (also written to the version's ``promotion.*`` tags)."""

    name: str
    version: str
    promoted: bool
    decision: str  # "promoted" | "refused" | "already-champion"
    reason: str
    metric_key: str
    new_value: float
    margin: float
    champion_version: str | None  # the champion compared against (None: there was none)
    champion_value: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Version an alias points at now, or None when the alias is not set."""
    aliases = client.get_registered_model(name).aliases or {}
    v = aliases.get(alias)
    return str(v) if v is not None else None


def champion_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The champion moves recorded in the registered-model tag ``champion.history`` (oldest first)."""
    raw = (client.get_registered_model(name).tags or {}).get(HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"registered model {name!r} has a corrupt {HISTORY_TAG} tag: {exc}") from exc
    return list(history) if isinstance(history, list) else []


def _move_champion(
    client: MlflowClient, name: str, version: str, previous: str | None, reason: str, action: str
) -> dict[str, Any]:
    client.set_registered_model_alias(name, CHAMPION, version)
    entry = {"version": version, "from": previous, "at": _now(), "reason": reason, "action": action}
    history = (champion_history(client, name) + [entry])[-HISTORY_MAX_ENTRIES:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return entry


def _set_version_tags(client: MlflowClient, name: str, version: str, tags: Mapping[str, Any]) -> None:
    for k, v in _clean_tags(tags).items():
        client.set_model_version_tag(name, version, k, v)


def _call_champion_fn(fn: Callable[..., float], uri: str) -> float:
    try:
        takes_arg = any(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
            for p in inspect.signature(fn).parameters.values()
        )
    except (TypeError, ValueError):
        takes_arg = True
    return float(fn(uri) if takes_arg else fn())


def _fmt(x: float | None) -> str:
    return "nan" if x is None or math.isnan(x) else f"{x:.6g}"


def promote_if_better(
    client: MlflowClient,
    name: str,
    version: str | int,
    metric_key: str,
    margin: float,
    new_value: float,
    champion_value_fn: Callable[..., float],
    *,
    max_attempts: int = 3,
) -> PromotionDecision:
    """Gate: ``version`` gets ``challenger``; it becomes ``champion`` when there is no champion or
    ``new_value >= champion_value + margin`` (a NaN ``new_value`` is always refused).

    ``champion_value_fn`` evaluates the current champion on the SAME held-out data that gave
    ``new_value``; it is called with the champion's pinned URI ``models:/<name>/<version>`` (or with
    no argument if it takes none, then it should load ``models:/<name>@champion``). The champion alias
    is read when the gate runs and read again just before moving it: if another process moved the
    champion meanwhile, the comparison is redone against the new champion.
    """
    version = str(version)
    new_value = float(new_value)
    client.get_model_version(name, version)  # fail early on an unknown version
    client.set_registered_model_alias(name, CHALLENGER, version)

    for _ in range(max_attempts):
        champ = _alias_version(client, name, CHAMPION)
        champ_value: float | None = None
        if champ is None:
            promoted, decision = True, "promoted"
            reason = f"no champion yet; {metric_key}={_fmt(new_value)}"
        elif champ == version:
            promoted, decision = False, "already-champion"
            reason = f"version {version} is already the champion"
        else:
            champ_value = _call_champion_fn(champion_value_fn, f"models:/{name}/{champ}")
            if _alias_version(client, name, CHAMPION) != champ:
                continue  # champion moved while we evaluated it: compare against the new one
            bar = champ_value + margin
            if math.isnan(new_value):
                promoted, decision = False, "refused"
                reason = f"{metric_key}=nan for the challenger; champion v{champ} has {_fmt(champ_value)}"
            elif math.isnan(champ_value):
                promoted, decision = True, "promoted"
                reason = f"{metric_key}={_fmt(new_value)}; champion v{champ} scores nan on the same data"
            elif new_value >= bar:
                promoted, decision = True, "promoted"
                reason = (
                    f"{metric_key}={_fmt(new_value)} >= champion v{champ} {_fmt(champ_value)} "
                    f"+ margin {_fmt(margin)} = {_fmt(bar)}"
                )
            else:
                promoted, decision = False, "refused"
                reason = (
                    f"{metric_key}={_fmt(new_value)} < champion v{champ} {_fmt(champ_value)} "
                    f"+ margin {_fmt(margin)} = {_fmt(bar)}"
                )
        break
    else:
        raise RuntimeError(
            f"the champion of {name!r} moved {max_attempts} times while version {version} was being compared; "
            "re-run the promotion when other promotions have finished"
        )

    if promoted:
        _move_champion(client, name, version, champ, reason, action="gate")
    _set_version_tags(
        client,
        name,
        version,
        {
            "promotion.decision": decision,
            "promotion.reason": reason,
            "promotion.compared_to": champ if champ is not None else "none",
            "promotion.metric": metric_key,
            "promotion.new_value": new_value,
            "promotion.champion_value": champ_value if champ_value is not None else "none",
            "promotion.margin": margin,
            "promotion.at": _now(),
        },
    )
    return PromotionDecision(
        name=name,
        version=version,
        promoted=promoted,
        decision=decision,
        reason=reason,
        metric_key=metric_key,
        new_value=new_value,
        margin=float(margin),
        champion_version=champ,
        champion_value=champ_value,
    )


def promote(client: MlflowClient, name: str, version: str | int, reason: str) -> dict[str, Any] | None:
    """Manually move ``champion`` to ``version`` (no gate); returns the history entry, or None when
    ``version`` already is the champion."""
    version = str(version)
    if not reason or not reason.strip():
        raise ValueError("a manual promotion needs a reason (it is kept in the champion history)")
    client.get_model_version(name, version)  # raises for an unknown version
    previous = _alias_version(client, name, CHAMPION)
    if previous == version:
        return None
    entry = _move_champion(client, name, version, previous, reason, action="promote")
    _set_version_tags(
        client,
        name,
        version,
        {
            "promotion.decision": "promoted (manual)",
            "promotion.reason": reason,
            "promotion.compared_to": previous or "none",
        },
    )
    return entry


def _champion_stack(history: list[dict[str, Any]], current: str | None) -> list[str]:
    """Replay the history into a stack of champions (promotions push, rollbacks pop)."""
    stack: list[str] = []
    for e in history:
        v, frm = str(e.get("version")), e.get("from")
        if e.get("action") == "rollback" and stack and frm is not None and stack[-1] == str(frm):
            stack.pop()
        if not stack or stack[-1] != v:
            stack.append(v)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)  # the alias was moved outside these functions
    return stack


def rollback(client: MlflowClient, name: str, reason: str = "rollback") -> dict[str, Any]:
    """Move ``champion`` back to the champion before the current one (per the history); returns the
    history entry. Raises ``ValueError`` when there is no previous champion to go back to."""
    current = _alias_version(client, name, CHAMPION)
    if current is None:
        raise ValueError(f"registered model {name!r} has no champion; nothing to roll back")
    stack = _champion_stack(champion_history(client, name), current)
    stack.pop()  # the current champion
    while stack:
        target = stack.pop()
        try:
            client.get_model_version(name, target)
        except MlflowException:
            continue  # that version was deleted since: go further back
        entry = _move_champion(client, name, target, current, f"{reason} (from v{current})", action="rollback")
        _set_version_tags(
            client,
            name,
            current,
            {"rollback.reason": f"{reason}: champion moved back to v{target}", "rollback.at": entry["at"]},
        )
        return entry
    raise ValueError(
        f"registered model {name!r}: version {current} is the first champion in the history; "
        "there is no previous champion to roll back to (promote a specific version instead)"
    )


def load_champion(name: str) -> mlflow.pyfunc.PyFuncModel:
    """The current champion bundle as a pyfunc model (``models:/<name>@champion``)."""
    return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")


# =============================================================================== locks and crashed runs
#: How long a training flow waits for another one holding the registry of the same model.
LOCK_TIMEOUT_S = 3600.0
RUN_PID_TAG = "capmix.pid"
RUN_HOST_TAG = "capmix.host"


def lock_path(tracking_uri: str, name: str) -> Path:
    """The lock file guarding register + promote of model ``name`` in the store ``tracking_uri``.

    A sqlite store gets its lock beside the database file (everyone opening that file shares it);
    any other store (a server, PostgreSQL) a lock under ``CAPMIX_LOCK_DIR`` (default
    ``~/.cache/capmix/locks``), which serialises the flows of one machine. Flows on several
    machines need a shared lock service instead (a Prefect global concurrency limit).
    """
    safe = re.sub(r"[^\w.-]", "_", name)
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return db.with_name(f"{db.name}.{safe}.lock")
    import hashlib

    root = Path(os.environ.get("CAPMIX_LOCK_DIR", Path.home() / ".cache" / "capmix" / "locks"))
    return root / f"{hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]}-{safe}.lock"


@contextmanager
def registry_lock(tracking_uri: str, name: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold the lock of model ``name`` (register + promote run inside it, so the promotion gate
    compares against the champion as it is at the moment of promotion). The OS releases the lock
    when its holder dies, so a killed flow never blocks the next one."""
    from filelock import FileLock, Timeout

    path = lock_path(tracking_uri, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout as exc:
        raise TimeoutError(
            f"another training flow has held the registry lock {path} of {name!r} for over {timeout:.0f} s; "
            "wait for it to finish (a dead holder releases it automatically)"
        ) from exc
    try:
        yield path
    finally:
        lock.release()


def run_owner_tags() -> dict[str, str]:
    """Tags naming the process of a run, so a later run can tell a killed one from a live one."""
    import socket

    return {RUN_PID_TAG: str(os.getpid()), RUN_HOST_TAG: socket.gethostname()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fail_dead_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs of this host whose process is gone (killed, crashed, OOM).

    A SIGKILL leaves no chance to end the run; the next flow cleans it up. Runs of other hosts, and
    runs without the owner tags, are left alone (their process cannot be checked from here).
    """
    import socket

    host = socket.gethostname()
    dead = []
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
        tags = run.data.tags
        pid = tags.get(RUN_PID_TAG)
        if tags.get(RUN_HOST_TAG) != host or not pid or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        client.set_tag(run.info.run_id, "capmix.failure", f"process {pid} ended without closing the run "
                       f"(killed or crashed); marked FAILED at {_now()}")
        client.set_terminated(run.info.run_id, status="FAILED")
        dead.append(run.info.run_id)
    return dead


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s:]*):[^/@\s]*@")


def redact(text: str) -> str:
    """``text`` with URL passwords masked (``scheme://user:***@host``), for logs and printed URIs."""
    return _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)
