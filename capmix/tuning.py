"""Hyperparameter search for CAPMix (gamma, alpha and optionally the mixup layers) with Optuna.

The objective is a *validation* metric from the *training period only*: for every tuned series
a detector is fitted on ``Series.train`` and scored by the ROC-AUC of real vs injected
validation windows (the chronological tail of the training period, see
:func:`capmix.detectors.capmix.training.chronological_split`) of the model it keeps (the epoch that
early stopping picked); the objective is the mean of those AUCs over the series. Test data is
never read, so tuning cannot leak the test labels into the reported results.

The study lives in an Optuna storage (any SQLAlchemy URL, default ``sqlite:///optuna.db``) and
is opened with ``load_if_exists=True``: running :func:`tune` again adds trials to the same
study, and several worker processes can share one study (give each a distinct
``TuneConfig.worker`` so their samplers draw different parameters).

No orchestration imports here (Prefect, MLflow, DVC): the flow passes ``on_trial`` to log a
run per trial, and DVC tracks the YAML written by :func:`write_best_params`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from capmix.atomic import atomic_file, write_text
from capmix.redaction import redact
from capmix.config import DetectorConfig
from capmix.data.canonical import Series
from capmix.detectors.capmix.detector import CAPMixDetector, data_digest
from capmix.detectors.capmix.training import EpochLog

__all__ = [
    "LAYER_CHOICES",
    "OBJECTIVE",
    "OnTrial",
    "TuneConfig",
    "TuneResult",
    "plot_study",
    "read_best_params",
    "study_result",
    "tune",
    "write_best_params",
]

#: Mixup layer sets searched when ``search_layers`` is on, encoded as strings because
#: Optuna categorical choices must be scalars. Fixed on purpose: changing the choices of an
#: existing study makes its stored distribution incompatible.
from capmix.params import LAYER_CHOICES  # noqa: E402

#: What the objective value means (written next to the best parameters).
OBJECTIVE = "mean over series of the validation ROC-AUC (real vs injected windows, training period only)"

#: Study user attribute holding the fingerprint of the data and fixed config it was created for.
_FINGERPRINT_ATTR = "capmix_fingerprint"

#: Config fields that do not change what a trial measures (excluded from the fingerprint).
_NEUTRAL_FIELDS = ("gamma", "alpha", "variant", "device", "score_batch_size")

#: ``on_trial(trial_number, params, value, state)`` called after every finished trial.
OnTrial = Callable[[int, dict[str, Any], float | None, str], None]


# params.yaml ``tune`` (TuneParams = TuneConfig + best_params) lives with the other params models
from capmix.params import TuneConfig  # noqa: E402


@dataclass(frozen=True)
class TuneResult:
    """Outcome of :func:`tune` over the whole study (including trials of earlier runs/workers)."""

    study_name: str
    storage: str | None  #: the URL with any password masked
    best_params: dict[str, Any]  #: gamma, alpha[, mixup_layers as a list]; {} when no trial completed
    best_value: float | None
    best_trial: int | None
    n_trials: int  #: finished trials in the study (complete + pruned + failed)
    n_complete: int
    n_pruned: int
    n_failed: int
    n_new: int  #: trials finished in the study while this call ran (other workers included)
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def _layers_from_choice(choice: str) -> list[int]:
    return [int(x) for x in str(choice).split(",") if x.strip()]


def _public_params(params: dict[str, Any]) -> dict[str, Any]:
    """Optuna params -> config overrides (mixup_layers as a list of ints)."""
    out: dict[str, Any] = {}
    for key in ("gamma", "alpha"):
        if key in params:
            out[key] = float(params[key])
    if "mixup_layers" in params:
        out["mixup_layers"] = _layers_from_choice(params["mixup_layers"])
    return out


def _mask_url(url: str | None) -> str | None:
    return None if url is None else redact(url)


def _open_storage(url: str | None) -> optuna.storages.BaseStorage | None:
    """RDB storage for a URL; sqlite gets its parent folder created and a lock timeout."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    engine_kwargs: dict[str, Any] = {}
    if parsed.drivername.startswith("sqlite"):
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # several workers on one sqlite file: wait for the write lock instead of failing at once
        engine_kwargs["connect_args"] = {"timeout": 60}
    else:
        engine_kwargs["pool_pre_ping"] = True
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(6):
        try:
            # heartbeats: a trial of a killed worker is marked FAIL instead of staying RUNNING forever
            with warnings.catch_warnings():  # heartbeat_interval is flagged experimental; it is what we want here
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=60, grace_period=180
                )
        except (IntegrityError, OperationalError, ProgrammingError):
            # two workers creating the schema of a fresh database at once: one of them loses the
            # CREATE TYPE/TABLE race (PostgreSQL: IntegrityError/ProgrammingError; sqlite:
            # OperationalError "table ... already exists"); the schema exists now, so opening again succeeds
            if attempt == 5:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _fingerprint(series: Sequence[Series], cfg: DetectorConfig, search_layers: bool) -> str:
    """Hash of the training data and the fixed config: trials are only comparable when it matches."""
    fixed = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in _NEUTRAL_FIELDS}
    if search_layers:
        fixed.pop("mixup_layers", None)
    h = hashlib.sha256(json.dumps(fixed, sort_keys=True).encode())
    for s in series:
        values, labels = s.train
        h.update(s.name.encode())
        h.update(data_digest(values, labels).encode())
    return h.hexdigest()[:16]


def _sampler_seed(seed: int, worker: int, n_existing: int) -> int:
    """Distinct, reproducible sampler stream per (seed, worker, study size at start).

    Why: with one fixed seed, a resumed study or a second worker would redraw exactly the same
    random start-up parameters as the first run and waste those trials on duplicates.
    """
    return int(np.random.SeedSequence([seed, worker, n_existing]).generate_state(1)[0])


def _series_auc(det: CAPMixDetector) -> float:
    """Validation AUC of the model the detector kept (best epoch), else the best finite one."""
    history: list[EpochLog] = det.history_
    kept = [log.val_auc for log in history if log.epoch == det.best_epoch_]
    if kept and math.isfinite(kept[0]):
        return float(kept[0])
    finite = [log.val_auc for log in history if math.isfinite(log.val_auc)]
    return max(finite) if finite else float("nan")


def _trial_row(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    params = _public_params(t.params)
    value = t.value
    if value is None and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]
    duration = t.duration.total_seconds() if t.duration is not None else None
    return {
        "number": t.number,
        "state": t.state.name,
        "value": None if value is None or not math.isfinite(value) else float(value),
        "gamma": params.get("gamma"),
        "alpha": params.get("alpha"),
        **({"mixup_layers": params["mixup_layers"]} if "mixup_layers" in params else {}),
        "duration_s": duration,
        "last_step": max(t.intermediate_values) if t.intermediate_values else None,
        "series_auc": t.user_attrs.get("series_auc"),
    }


_FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)


# ----------------------------------------------------------------------------------------------
# tuning
# ----------------------------------------------------------------------------------------------


def _tuned_series(series_list: Sequence[Series], tune_cfg: TuneConfig) -> list[Series]:
    """The series a trial fits: the first ``n_series`` of the dataset (all when unset)."""
    series = list(series_list)
    if tune_cfg.n_series is not None:
        series = series[: tune_cfg.n_series]
    if not series:
        raise ValueError("tune() got no series; pass at least one Series (check n_series / the dataset)")
    return series


def _fixed_config(base_cfg: DetectorConfig, tune_cfg: TuneConfig) -> DetectorConfig:
    """The config every trial starts from: capmix variant, the epoch cap of tuning (if any)."""
    fixed = base_cfg.replace(variant="capmix")
    if tune_cfg.max_epochs is not None:
        fixed = fixed.replace(max_epochs=tune_cfg.max_epochs, min_epochs=min(fixed.min_epochs, tune_cfg.max_epochs))
    if not tune_cfg.search_layers and not fixed.mixup_layers:
        raise ValueError("base config has no mixup_layers: the capmix variant needs mixup; set some or search_layers")
    return fixed


def _default_pruner(tune_cfg: TuneConfig, fixed: DetectorConfig) -> optuna.pruners.BasePruner:
    if not tune_cfg.pruning:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=tune_cfg.n_startup_trials,
        # no pruning during the first series' warm-up epochs (BatchNorm statistics settle)
        n_warmup_steps=min(fixed.min_epochs, fixed.max_epochs),
    )


def _claim_study(study: optuna.Study, fingerprint: str, series: Sequence[Series], tune_cfg: TuneConfig) -> None:
    """Stamp a new study with the fingerprint; refuse a study made for other data or fixed settings."""
    stored = study.user_attrs.get(_FINGERPRINT_ATTR)
    if stored is None:
        study.set_user_attr(_FINGERPRINT_ATTR, fingerprint)
        study.set_user_attr("objective", OBJECTIVE)
        study.set_user_attr("series", [s.name for s in series])
    elif stored != fingerprint:
        raise ValueError(
            f"study {tune_cfg.study_name!r} in {_mask_url(tune_cfg.storage)} was created for other training data "
            f"or fixed settings (fingerprint {stored} != {fingerprint}); its trials are not comparable. "
            "Fix: set tune.study_name to a new name, or delete the old study."
        )


def _suggest_config(trial: optuna.Trial, fixed: DetectorConfig, tune_cfg: TuneConfig) -> DetectorConfig:
    """The trial's config: ``fixed`` with the sampled gamma, alpha (and mixup layers)."""
    changes: dict[str, Any] = {
        "gamma": trial.suggest_float("gamma", *tune_cfg.gamma_range, log=True),
        "alpha": trial.suggest_float("alpha", *tune_cfg.alpha_range, log=True),
    }
    if tune_cfg.search_layers:
        changes["mixup_layers"] = _layers_from_choice(trial.suggest_categorical("mixup_layers", LAYER_CHOICES))
    return fixed.replace(**changes)


def _fit_series_auc(trial: optuna.Trial, cfg: DetectorConfig, s: Series, index: int, done: list[float]) -> float:
    """Fit one series' training period, reporting the running objective after each epoch; its AUC.

    ``done`` holds the AUCs of the series already fitted in this trial (finite only).
    """
    best_so_far = float("nan")

    def on_epoch(log: EpochLog) -> None:
        nonlocal best_so_far
        if not math.isfinite(log.val_auc):
            return
        if not math.isfinite(best_so_far) or log.val_auc > best_so_far:
            best_so_far = log.val_auc
        running = float(np.mean([*done, best_so_far]))
        trial.report(running, index * cfg.max_epochs + log.epoch - 1)
        if trial.should_prune():
            # raised inside fit: nothing in fit/train_model catches it, so training stops here
            raise optuna.TrialPruned(f"pruned at series {s.name!r} epoch {log.epoch}")

    values, labels = s.train  # the training period only; Series.test is never read
    det = CAPMixDetector(cfg).fit(values, labels, on_epoch=on_epoch)
    return _series_auc(det)


def _objective(
    series: Sequence[Series], fixed: DetectorConfig, tune_cfg: TuneConfig
) -> Callable[[optuna.Trial], float]:
    """Optuna objective: mean validation AUC over ``series`` of one sampled config."""

    def objective(trial: optuna.Trial) -> float:
        cfg = _suggest_config(trial, fixed, tune_cfg)
        done: list[float] = []  # finished series' AUCs (finite only)
        for index, s in enumerate(series):
            auc = _fit_series_auc(trial, cfg, s, index, done)
            if math.isfinite(auc):
                done.append(auc)
            trial.set_user_attr("series_auc", [*trial.user_attrs.get("series_auc", []), auc])
        # NaN (no series gave a finite AUC) makes Optuna mark the trial FAIL and go on
        return float(np.mean(done)) if done else float("nan")

    return objective


def _trial_callbacks(on_trial: OnTrial | None) -> list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]]:
    """Optuna callbacks forwarding every finished trial to ``on_trial`` (none without one)."""
    if on_trial is None:
        return []

    def _callback(_study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        row = _trial_row(t)
        on_trial(t.number, _public_params(t.params), row["value"], t.state.name)

    return [_callback]


def tune(
    series_list: Sequence[Series],
    base_cfg: DetectorConfig,
    tune_cfg: TuneConfig,
    on_trial: OnTrial | None = None,
    *,
    pruner: optuna.pruners.BasePruner | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
) -> TuneResult:
    """Search gamma/alpha (and mixup layers) maximising the mean validation AUC; resumable.

    Each trial fits one detector per series on its training period with
    ``base_cfg.replace(variant="capmix", gamma=..., alpha=...[, mixup_layers=...])``. After
    every epoch the running objective (completed series' AUCs plus the current series' best
    AUC so far, averaged) is reported at global step ``series_index * max_epochs + epoch - 1``
    (aligned across trials even when early stopping ends a series early), and a trial the
    pruner rejects stops training at once. ``pruner``/``sampler`` override the defaults
    (``MedianPruner``, ``TPESampler``), e.g. in tests.
    """
    series = _tuned_series(series_list, tune_cfg)
    fixed = _fixed_config(base_cfg, tune_cfg)
    storage = _open_storage(tune_cfg.storage)
    study = optuna.create_study(
        storage=storage,
        study_name=tune_cfg.study_name,
        direction="maximize",
        load_if_exists=True,
        pruner=pruner if pruner is not None else _default_pruner(tune_cfg, fixed),
    )
    _claim_study(study, _fingerprint(series, fixed, tune_cfg.search_layers), series, tune_cfg)
    n_before = len(study.get_trials(deepcopy=False, states=_FINISHED))
    if sampler is None:
        sampler = optuna.samplers.TPESampler(
            seed=_sampler_seed(tune_cfg.seed, tune_cfg.worker, len(study.get_trials(deepcopy=False)))
        )
    study.sampler = sampler
    study.optimize(
        _objective(series, fixed, tune_cfg),
        n_trials=tune_cfg.n_trials,
        timeout=tune_cfg.timeout_s,
        callbacks=_trial_callbacks(on_trial),
    )
    return _result(study, tune_cfg, n_before)


def study_result(tune_cfg: TuneConfig) -> TuneResult:
    """The result of the whole study in ``tune_cfg.storage``, e.g. after several workers finished.

    Read-only: no trial is run. ``n_new`` is 0 (nothing ran in this call).
    """
    storage = _open_storage(tune_cfg.storage)
    if storage is None:
        raise ValueError("study_result needs a persistent tune storage (an in-memory study ends with its process)")
    study = optuna.load_study(study_name=tune_cfg.study_name, storage=storage)
    return _result(study, tune_cfg, len(study.get_trials(deepcopy=False, states=_FINISHED)))


def _result(study: optuna.Study, tune_cfg: TuneConfig, n_before: int) -> TuneResult:
    trials = study.get_trials(deepcopy=False, states=_FINISHED)
    states = [t.state for t in trials]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None  # type: ignore[arg-type, return-value]
    return TuneResult(
        study_name=study.study_name,
        storage=_mask_url(tune_cfg.storage),
        best_params=_public_params(best.params) if best else {},
        best_value=float(best.value) if best and best.value is not None else None,
        best_trial=best.number if best else None,
        n_trials=len(trials),
        n_complete=len(complete),
        n_pruned=states.count(optuna.trial.TrialState.PRUNED),
        n_failed=states.count(optuna.trial.TrialState.FAIL),
        n_new=len(trials) - n_before,
        trials=[_trial_row(t) for t in trials],
    )


# ----------------------------------------------------------------------------------------------
# best-params file (DVC output) and plot
# ----------------------------------------------------------------------------------------------


def write_best_params(result: TuneResult, path: str | Path) -> Path:
    """Write the best parameters and their provenance as YAML, atomically (temp file + rename)."""
    if not result.best_params:
        raise ValueError(
            f"study {result.study_name!r} has no completed trial ({result.n_pruned} pruned, {result.n_failed} "
            "failed); nothing to write. Fix: run more trials, or relax pruning (tune.pruning / n_startup_trials)"
        )
    doc = {
        "best_params": result.best_params,
        "provenance": {
            "study_name": result.study_name,
            "storage": result.storage,
            "objective": OBJECTIVE,
            "best_value": result.best_value,
            "best_trial": result.best_trial,
            "n_trials": result.n_trials,
            "n_complete": result.n_complete,
            "n_pruned": result.n_pruned,
            "n_failed": result.n_failed,
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    }
    path = Path(path)
    header = "# Best CAPMix hyperparameters found by capmix.tuning (validation AUC, training period only).\n"
    write_text(path, header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False))
    return path


def read_best_params(path: str | Path) -> dict[str, Any]:
    """The ``best_params`` written by :func:`write_best_params`; ``{}`` when the file does not exist.

    The result is ready for ``base_cfg.replace(**params)`` / ``detector_config(params, **best)``.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}; delete it and re-run tuning") from exc
    if doc is None:
        return {}
    best = doc.get("best_params") if isinstance(doc, dict) else None
    if not isinstance(best, dict):
        raise ValueError(f"{path} has no 'best_params' mapping; it was not written by write_best_params")
    unknown = sorted(set(best) - {"gamma", "alpha", "mixup_layers"})
    if unknown:
        raise ValueError(f"{path}: unknown tuned parameters {unknown}; expected gamma, alpha, mixup_layers")
    try:
        DetectorConfig().replace(**best)  # fail here, naming the file, rather than deep in training
    except ValueError as exc:
        raise ValueError(f"{path} holds invalid parameters: {exc}") from exc
    out = dict(best)
    if "mixup_layers" in out:
        out["mixup_layers"] = [int(x) for x in out["mixup_layers"]]
    return out


def plot_study(trials: Sequence[dict[str, Any]] | TuneResult, path: str | Path) -> Path:
    """gamma x alpha scatter (log axes) coloured by objective, pruned/failed in grey, best starred; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = trials.trials if isinstance(trials, TuneResult) else list(trials)
    rows = [r for r in rows if r.get("gamma") is not None and r.get("alpha") is not None]
    done = [r for r in rows if r.get("state") == "COMPLETE" and r.get("value") is not None]
    other = [r for r in rows if r not in done]

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    if other:
        ax.scatter(
            [r["gamma"] for r in other], [r["alpha"] for r in other],
            marker="x", c="0.6", label=f"pruned/failed ({len(other)})",
        )
    if done:
        sc = ax.scatter(
            [r["gamma"] for r in done], [r["alpha"] for r in done], c=[r["value"] for r in done],
            cmap="viridis", edgecolors="k", linewidths=0.4, label=f"complete ({len(done)})",
        )
        fig.colorbar(sc, ax=ax, label="validation AUC (objective)")
        best = max(done, key=lambda r: r["value"])
        ax.scatter(
            [best["gamma"]], [best["alpha"]], marker="*", s=320, facecolors="none", edgecolors="red",
            linewidths=1.6, label=f"best #{best['number']}: {best['value']:.4f}",
        )
    if rows:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(loc="best", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no trials yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("gamma (soft-label zone width)")
    ax.set_ylabel("alpha (mixup Beta parameter)")
    ax.set_title("CAPMix tuning: validation AUC per trial")
    ax.grid(True, which="both", alpha=0.3)

    try:
        with atomic_file(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)
