"""params.yaml, typed: one pydantic model per section, composed in :class:`Params`, loaded once and passed down.

``load_params(path)`` reads the file (credentials refused), validates every section and returns a
:class:`Params`; code reads ``params.train.lr``, ``params.register.model_name``, ... and never a raw
``.get()`` with an inline default: **defaults live in the models only**.

Strict: an unknown top-level section or an unknown key in any section is refused with one line naming
it and the closest valid name (``params.yaml: unknown section 'datset'; did you mean 'dataset'?``).

Sections whose model lives in a heavy module (``coad``: torch; ``benchmark``/``studies``: the harness)
are validated with that module imported at load time, never at import time of this module.

Where code of the detector registry still takes the whole params as a dict, pass ``params.model_dump()``:
partial sections (``presets``, ``coad``, ``coad_presets``, ``baselines``) dump only the keys params.yaml
sets, so the dict is what the file says, validated.

Each DVC stage (the ``capmix`` command of the same name) reads only what :func:`stage_params` declares:
the command works on ``params.scoped(stage)``, which raises :class:`UndeclaredParamError` on any other
read, and tests/code/test_params.py checks dvc.yaml's ``params:`` lists against the declaration.

A new section (e.g. ``ensemble``): write its model and add one field to :class:`Params`.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator,
                      model_serializer, model_validator)

from capmix.config import DetectorConfig, ParamsError, read_params_file
from capmix.data.synthetic import GeneratorConfig
from capmix.data.validation import ValidationConfig

#: mixup layer sets the tuner may try (``tune.search_layers``)
LAYER_CHOICES: tuple[str, ...] = ("0", "0,3", "0,1", "0,2", "0,1,2,3")


class _Section(BaseModel):
    """A params.yaml section: unknown keys are refused."""

    model_config = ConfigDict(extra="forbid")


class _Partial(_Section):
    """A section that overrides another model's fields: only the keys params.yaml sets are applied
    (and dumped); an unset key is None here and takes the other model's value."""

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


def _fields_of(model: type[BaseModel], partial: bool, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """``model``'s fields (types, constraints, descriptions) for ``create_model``; ``partial``: all optional."""
    out = {}
    for name, f in model.model_fields.items():
        if name in exclude:
            continue
        fi = copy.copy(f)
        if partial:
            fi.default, fi.default_factory = None, None
        out[name] = (f.annotation | None if partial else f.annotation, fi)
    return out


# ------------------------------------------------------------------------------------------ sections
class GenerateParams(GeneratorConfig):
    """``generate``: the embedded default dataset (``capmix generate``) and where it is written."""

    out: str = "data/default/series.parquet"

    def generator(self) -> GeneratorConfig:
        return GeneratorConfig.model_validate(self.model_dump(exclude={"out"}))


class DatasetConfig(_Section):
    """``dataset``: which data the pipeline runs on."""

    name: str = "default"
    path: str = "data/default/series.parquet"
    root: str = "../shared/datasets"
    subset: int | None = Field(None, ge=1)


#: ``train``: every DetectorConfig key (checked together after the preset is applied) + ``preset``.
TrainParams = create_model(
    "TrainParams", __base__=_Section, __doc__="``train``: the CAPMix detector's keys and the preset applied over them",
    preset=(str, Field("default", description="applies presets.<name> over the keys of this section")),
    **_fields_of(DetectorConfig, partial=False),
)

#: ``presets.<name>``: some of the ``train`` keys.
PresetParams = create_model("PresetParams", __base__=_Partial, **_fields_of(DetectorConfig, partial=True))


class EvaluateConfig(_Section):
    """``evaluate``."""

    granularity: Literal["window", "point"] = "window"
    ucr_widen: int | None = Field(None, ge=0, description="set: also report the UCR protocol")
    max_plots: int = Field(4, ge=0)


_VALIDATE_KEYS = ("max_anomaly_ratio", "min_anomaly_ratio", "max_irregular_ratio", "impute")


class _ValidateBase(_Section):
    out: str = "reports/validation"

    def config(self, **run: Any) -> ValidationConfig:
        """The suite's config for one run (kind, window, channels, mode, require_labels given here)."""
        return ValidationConfig(**{k: getattr(self, k) for k in _VALIDATE_KEYS}, **run)


#: ``validate``: the suite's thresholds (ValidationConfig's fields) and the report folder.
ValidateParams = create_model(
    "ValidateParams", __base__=_ValidateBase,
    **{k: v for k, v in _fields_of(ValidationConfig, partial=False).items() if k in _VALIDATE_KEYS},
)


class TuneConfig(BaseModel):
    """Search space, budget and storage of one tuning run (section ``tune`` of params.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="the pipeline tunes only when this is true")
    n_trials: int = Field(20, ge=1, description="trials to run in this call (added to the study)")
    timeout_s: float | None = Field(None, gt=0, description="stop starting new trials after this many seconds")
    gamma_range: tuple[float, float] = Field((1.05, 5.0), description="gamma search range (log scale), > 1")
    alpha_range: tuple[float, float] = Field((0.02, 1.0), description="alpha search range (log scale), > 0")
    search_layers: bool = Field(False, description=f"also search mixup_layers among {LAYER_CHOICES}")
    storage: str | None = Field(
        "sqlite:///optuna.db", description="SQLAlchemy URL of the Optuna storage; None = in memory (not resumable)"
    )
    study_name: str = Field("capmix", min_length=1)
    seed: int = Field(0, ge=0, description="TPE sampler seed")
    worker: int = Field(0, ge=0, description="index of this process when several share one study")
    workers: int = Field(
        1, ge=1, description="processes running trials of this study at once (the flow submits one task each)"
    )
    max_epochs: int | None = Field(None, ge=1, description="per-trial epoch budget; None = the detector's")
    n_series: int | None = Field(None, ge=1, description="tune on the first N series only; None = all")
    pruning: bool = Field(True, description="MedianPruner on the running validation AUC")
    n_startup_trials: int = Field(5, ge=0, description="trials never pruned (MedianPruner n_startup_trials)")

    @model_validator(mode="after")
    def _ranges(self) -> TuneConfig:
        for name, (low, high), floor, why in (
            ("gamma_range", self.gamma_range, 1.0, "gamma > 1"),
            ("alpha_range", self.alpha_range, 0.0, "alpha > 0"),
        ):
            if not floor < low < high:
                raise ValueError(f"{name}=({low}, {high}) must satisfy {floor} < low < high ({why}; log scale)")
        return self

    @classmethod
    def from_params(cls, params: Any, **overrides: Any) -> TuneConfig:
        """From a :class:`Params` (or a params dict's ``tune`` section), keyword overrides on top."""
        section = params.tune.search_config().model_dump() if isinstance(params, Params) else {
            k: v for k, v in dict(params.get("tune", {}) or {}).items() if k != "best_params"}
        return cls.model_validate({**section, **overrides})


class TuneParams(TuneConfig):
    """``tune``: the search (TuneConfig) and the DVC-tracked file its best parameters go to."""

    best_params: str = "tuning/best_params.yaml"

    def search_config(self, **overrides: Any) -> TuneConfig:
        return TuneConfig.model_validate({**self.model_dump(exclude={"best_params"}), **overrides})


class MlflowParams(_Section):
    """``mlflow``: tracking and registry store (MLFLOW_TRACKING_URI in the environment wins)."""

    tracking_uri: str = "sqlite:///mlflow.db"
    experiment: str = "capmix"
    artifact_location: str | None = Field(None, description="only used when the experiment is created")
    scoring_experiment: str | None = Field(None, description="None = '<experiment>-scoring'")

    @property
    def scoring(self) -> str:
        return self.scoring_experiment or f"{self.experiment}-scoring"


class RegisterParams(_Section):
    """``register``: the registered model and the promotion gate."""

    model_name: str = "capmix-default"  #: the one place of this default
    metric: str = Field("auc_pr", description="compared on the same held-out data (higher is better)")
    margin: float = Field(0.0, description="challenger must beat champion by this much")
    promote_ties: bool = Field(False, description="promote a challenger level with champion + margin")
    min_metric: float = Field(0.0, description="evaluation gate: below this nothing is registered")


class FlowParams(_Section):
    """``flow``: the Prefect task runner and the flow's output folder."""

    task_runner: Literal["sequential", "threads", "dask"] = "sequential"
    max_workers: int = Field(2, ge=1)
    dask_address: str | None = None
    dask_workers: int = Field(2, ge=1)
    dask_torch_threads: int | None = Field(None, ge=1, description="None = cores // dask_workers")
    out_dir: str = "runs/latest"


class ScheduleParams(_Section):
    """``schedule``: the nightly deployment (flows/serve.py checks the cron string and the zone)."""

    cron: str = "0 2 * * *"
    timezone: str = "UTC"


class NightlyParams(_Section):
    """``nightly``: the day-by-day retraining flow (flows/nightly.py): inbox, history rules, drift, promotion."""

    workdir: str = Field("nightly", description="inbox/, history/, quarantine/, alarms/, state/ and runs/ live here")
    duplicates: Literal["keep_first", "keep_last", "reject"] = Field(
        "keep_first", description="a point whose (series, timestamp) is stored already: keep the stored one, "
                                  "replace it, or quarantine the day")
    late: Literal["insert", "drop", "reject"] = Field(
        "insert", description="a new point earlier than its series' last stored point")
    train_days: int = Field(3, ge=1, description="rolling training window (days before the newest slice)")
    max_gap: float = Field(10.0, gt=1.0, description="the training window starts after the last gap longer than "
                                                      "this many sampling intervals (e.g. a quarantined day)")
    holdout_fraction: float = Field(0.5, gt=0.0, lt=1.0,
                                    description="the newest day's last part: champion vs challenger, never trained on")
    retrain: Literal["on_drift", "daily"] = Field(
        "on_drift", description="on_drift: train when there is no champion, the day drifted, or the champion is "
                                "last trained max_model_age_days ago; daily: every day with new data")
    max_model_age_days: int = Field(7, ge=1, description="on_drift: days after the last training (promoted or "
                                                          "not) when a challenger is trained anyway")
    drift_threshold: float = Field(0.25, gt=0.0, description="PSI above which a day has drifted (0.25: 'act')")
    drift_bins: int = Field(10, ge=2)
    range_margin: float = Field(1.0, ge=0.0, description="values beyond the history's range widened by this x span "
                                                         "are a broken feed: the day is quarantined")
    range_mostly: float = Field(0.99, gt=0.0, le=1.0, description="share of a channel's values that must be in range")
    margin: float = Field(0.02, ge=0.0, description="the challenger must beat the champion by this on the newest slice")
    probe_anomalies: int = Field(4, ge=1, description="unlabelled slice: probe anomalies placed per series")
    probe_seed: int = Field(0, ge=0)
    concurrency_limit: str = Field("capmix-nightly", description="Prefect global concurrency limit (1 slot) "
                                                                  "held by a nightly run: one at a time, on any machine")


class SimulateParams(_Section):
    """``simulate``: the week ``capmix simulate`` drives (days from the embedded generator)."""

    series: int = Field(2, ge=1)
    channels: int = Field(3, ge=1)
    points_per_day: int = Field(1440, ge=64)
    history_days: int = Field(3, ge=1, description="days already in the history before the first simulated day")
    anomalies_per_day: int = Field(2, ge=0)
    drift_day: int | None = Field(4, ge=1, description="from this day on the signal is rescaled and shifted")
    drift_scale: float = Field(2.5, gt=0.0)
    drift_shift: float = Field(2.0, description="level shift in the channel's stds")
    broken_day: int | None = Field(3, ge=1, description="this day arrives with a renamed channel")
    repeat_day: int | None = Field(6, ge=2, description="this day arrives as the previous day's file again")
    seed: int = Field(7, ge=0)


class ShiftParams(_Section):
    """``shift``: anomaly-shift measurement of the training flow (CAPMix only)."""

    enabled: bool = False
    max_series: int = Field(2, ge=0)
    plots: int = Field(1, ge=0)


class _Baseline(_Partial):
    max_train_windows: int | None = Field(None, ge=1)


class NoParams(_Partial):
    """A baseline without hyperparameters of its own (``random``, ``zscore``): only ``{}`` is valid."""


class IForestParams(_Baseline):
    n_estimators: int | None = Field(None, ge=1)


class OCSVMParams(_Baseline):
    nu: float | None = Field(None, gt=0.0, le=1.0)


class DeepSVDDParams(_Baseline):
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=2)


class MPParams(_Partial):
    max_reference: int | None = Field(None, ge=1)


class BaselinesParams(_Section):
    """``baselines.<name>``: each baseline's keyword arguments (unset: the class default)."""

    random: NoParams = Field(default_factory=NoParams)
    iforest: IForestParams = Field(default_factory=IForestParams)
    ocsvm: OCSVMParams = Field(default_factory=OCSVMParams)
    deepsvdd: DeepSVDDParams = Field(default_factory=DeepSVDDParams)
    mp: MPParams = Field(default_factory=MPParams)
    zscore: NoParams = Field(default_factory=NoParams)


# sections whose model lives in a torch- or harness-heavy module: built on first validation
@cache
def coad_model() -> type[BaseModel]:
    """``coad`` / ``coad_presets.<name>``: some of CoADConfig's keys (the rest: its defaults, or the dataset's
    CAPMix config for the shared ones)."""
    from capmix.detectors.coad import CoADConfig

    return create_model("CoADParams", __base__=_Partial, **_fields_of(CoADConfig, partial=True, exclude=("detector",)))


@cache
def ensemble_model() -> type[BaseModel]:
    """``ensemble`` / ``ensemble_presets.<name>``: EnsembleConfig's own keys (segments, threshold rule and
    seed come from the dataset's CAPMix config; the members' hyperparameters from their own sections)."""
    from capmix.detectors.ensemble import EnsembleConfig

    shared = ("window", "stride", "threshold_z", "val_fraction", "seed", "member_params")
    return create_model("EnsembleParams", __base__=_Partial, **_fields_of(EnsembleConfig, partial=True, exclude=shared))


@cache
def benchmark_model() -> type[BaseModel]:
    from capmix.evaluation.benchmark import BenchmarkConfig

    return BenchmarkConfig


@cache
def studies_model() -> type[BaseModel]:
    from capmix.evaluation.studies import STUDIES

    return create_model("StudiesParams", __base__=_Section,
                        **{name: (cls, Field(default_factory=cls)) for name, cls in STUDIES.items()})


def _lazy(model: Callable[[], type[BaseModel]]) -> Any:
    def validate(value: Any) -> Any:
        cls = model()
        return value if isinstance(value, cls) else cls.model_validate({} if value is None else value)

    return BeforeValidator(validate)


#: field -> the lazily built model (for the error messages' valid names)
_LAZY: dict[str, Callable[[], type[BaseModel]]] = {"coad": coad_model, "ensemble": ensemble_model,
                                                   "benchmark": benchmark_model, "studies": studies_model}


# ------------------------------------------------------------------------------------------ Params
with warnings.catch_warnings():
    # `validate`, `register` shadow BaseModel.validate (deprecated) and ABCMeta.register on instances only
    warnings.filterwarnings("ignore", message='Field name "(validate|register)"', category=UserWarning)

    class Params(_Section):
        """The whole params.yaml. Sections: one field each; add a field for a new section."""

        generate: GenerateParams = Field(default_factory=GenerateParams)
        dataset: DatasetConfig = Field(default_factory=DatasetConfig)
        detector: str = Field("capmix", description="the detector the pipeline trains (a name of capmix.detector_names())")
        train: TrainParams = Field(default_factory=TrainParams)  # type: ignore[valid-type]
        presets: dict[str, PresetParams] = Field(default_factory=dict)  # type: ignore[valid-type]
        evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
        validate: ValidateParams = Field(default_factory=ValidateParams)  # type: ignore[valid-type]
        tune: TuneParams = Field(default_factory=TuneParams)
        mlflow: MlflowParams = Field(default_factory=MlflowParams)
        register: RegisterParams = Field(default_factory=RegisterParams)
        flow: FlowParams = Field(default_factory=FlowParams)
        schedule: ScheduleParams = Field(default_factory=ScheduleParams)
        shift: ShiftParams = Field(default_factory=ShiftParams)
        nightly: NightlyParams = Field(default_factory=NightlyParams)
        simulate: SimulateParams = Field(default_factory=SimulateParams)
        baselines: BaselinesParams = Field(default_factory=BaselinesParams)
        coad: Annotated[Any, _lazy(coad_model)] = None
        coad_presets: dict[str, Annotated[Any, _lazy(coad_model)]] = Field(default_factory=dict)
        ensemble: Annotated[Any, _lazy(ensemble_model)] = None
        ensemble_presets: dict[str, Annotated[Any, _lazy(ensemble_model)]] = Field(default_factory=dict)
        benchmark: Annotated[Any, _lazy(benchmark_model)] = None
        studies: Annotated[Any, _lazy(studies_model)] = None

        @model_validator(mode="before")
        @classmethod
        def _lazy_defaults(cls, data: Any) -> Any:
            # absent lazy sections still get their (validated, default) model
            if isinstance(data, dict):
                data = {**{k: {} for k in _LAZY}, **data}
            return data

        @field_validator("detector")
        @classmethod
        def _known_detector(cls, v: str) -> str:
            from capmix.detectors.registry import REGISTRY

            if v not in REGISTRY:
                close = difflib.get_close_matches(v, list(REGISTRY), n=1)
                raise ValueError(f"unknown detector {v!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                                 + f" Choose one of {list(REGISTRY)}")
            return v

        # -- derived values: every reader goes through these, so there is one rule each
        def preset_name(self, preset: str | None = None) -> str:
            return preset or self.train.preset

        def detector_config(self, preset: str | None = None, **overrides: Any) -> DetectorConfig:
            """CAPMix config: ``train``, then ``presets.<preset>`` (or train.preset), then ``overrides``."""
            from capmix.config import detector_config

            name = self.preset_name(preset)
            chosen = self.presets.get(name)
            if chosen is None and name != "default":
                raise ValueError(f"preset {name!r} not in params.yaml presets; known: {sorted(self.presets)}")
            raw = {"train": self.train.model_dump(), "presets": {name: chosen.model_dump()} if chosen else {}}
            return detector_config(raw, preset=name, **overrides)

        def capmix_window(self, preset: str | None = None) -> int:
            """The CAPMix window (train.window, or the preset's): what data validation checks lengths against."""
            chosen = self.presets.get(self.preset_name(preset))
            return chosen.window if chosen is not None and chosen.window is not None else self.train.window

        def tuned_overrides(self, enabled: bool | None = None) -> dict[str, Any]:
            """THE rule for tuned parameters (CLI and flow): ``tune.best_params`` is applied only when tuning
            is enabled (``tune.enabled``, or ``enabled`` from a ``--tune/--no-tune`` flag) and the detector is
            of the CAPMix family; a file left from an earlier tuning run never changes training on its own."""
            from capmix.detectors.registry import family

            if family(self.detector) != "capmix":  # other detectors never read `tune`
                return {}
            if not (self.tune.enabled if enabled is None else enabled):
                return {}
            from capmix.tuning import read_best_params

            return read_best_params(self.tune.best_params)

        def scoped(self, stage: str) -> ScopedParams:
            """A view of these params that allows only the reads :func:`stage_params` declares for ``stage``."""
            return ScopedParams(self, stage_params(stage, self), stage)


# ------------------------------------------------------------------------------------------ loading
def _names_at(loc: tuple[Any, ...]) -> tuple[str, list[str]]:
    """(dotted section, valid keys) of the model that holds the last element of ``loc``."""
    cur: Any = Params
    where: list[str] = []
    i = 0
    parts = list(loc[:-1])
    while i < len(parts):
        part = str(parts[i])
        where.append(part)
        ann = cur.model_fields[part].annotation if part in cur.model_fields else None
        if cur is Params and part in _LAZY:
            ann = _LAZY[part]()
        if get_origin(ann) is dict:  # dict[str, X]: the next loc part is a free name
            i += 1
            if i < len(parts):
                where.append(str(parts[i]))
            ann = get_args(ann)[1]
            if get_origin(ann) is Annotated and part == "coad_presets":
                ann = coad_model()
        for a in get_args(ann) or (ann,):  # X | None
            if isinstance(a, type) and issubclass(a, BaseModel):
                ann = a
        if get_origin(ann) is Annotated:
            ann = get_args(ann)[0]
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ".".join(where), []
        cur = ann
        i += 1
    return ".".join(where), list(cur.model_fields)


def _unknown(loc: tuple[Any, ...], source: str) -> str:
    where, valid = _names_at(loc)
    name = str(loc[-1])
    what = "section" if len(loc) == 1 else "key"
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    if close:
        hint = f"did you mean {close[0]!r}?"
    else:  # a section without keys of its own (baselines.random, baselines.zscore) says so
        hint = f"valid: {', '.join(valid)}" if valid else "this section takes no keys: leave it {}"
    return f"{source}{' ' + where if where else ''}: unknown {what} {name!r}; {hint}"


def explain_params(exc: ValidationError, source: str = "params.yaml") -> str:
    """One line: the first unknown section/key with the closest valid name, else every invalid value."""
    errors = exc.errors()
    unknown = sorted((tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"), key=len)
    if unknown:  # a misspelt section first: its keys' errors follow from it
        return _unknown(unknown[0], source)
    parts = []
    for err in errors:
        key = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{key} = {err.get('input')!r}: {msg}" if key else msg)
    return f"invalid {source}: " + "; ".join(parts) + ". Fix: correct these keys in params.yaml (allowed values: capmix/params.py)"


def parse_params(data: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping (as read from YAML) into :class:`Params`; :class:`ParamsError` in one line."""
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(explain_params(exc, source)) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read, check (credentials refused) and validate params.yaml once; pass the result down."""
    return parse_params(read_params_file(path), str(path))


def derive_params(source: str | Path, target: str | Path, changes: dict[str, dict[str, Any]]) -> Path:
    """Params file ``source`` with ``changes`` (section -> keys) applied, validated, then written atomically
    to ``target``: the params of a flow run by another (a nightly day's training, a simulation's workdir).
    A change that breaks the params raises here and writes nothing."""
    import yaml

    from capmix.atomic import atomic_file

    raw = read_params_file(source)
    for section, keys in changes.items():
        raw[section] = {**(raw.get(section) or {}), **keys}
    parse_params(raw, str(target))
    with atomic_file(target, suffix=".yaml") as tmp:
        tmp.write_text(yaml.safe_dump(raw, sort_keys=False))
    return Path(target)


# ------------------------------------------------------------------------------------------ DVC stages
def stage_params(stage: str, params: Params) -> list[str]:
    """The params keys DVC stage ``stage`` (``capmix <stage>``) reads, exactly as dvc.yaml lists them.

    The command runs on ``params.scoped(stage)``, which refuses any other read; the lists follow the
    params where the code does (the chosen detector, the preset name).
    """
    preset = f"presets.{params.train.preset}"
    data = ["dataset.path", "dataset.subset"]
    if stage == "generate":
        return ["generate"]
    if stage == "validate":
        return ["validate", "dataset.path", "train.preset", "train.window", preset]
    if stage == "tune":
        return ["tune", *data, "detector", "train", preset]
    if stage == "train":
        from capmix.detectors.registry import entry

        e = entry(params.detector)
        own = ["tune.enabled", "tune.best_params"] if e.family == "capmix" else []
        if e.section:  # the detector's own section (and its per-dataset presets, where it has them)
            own.append(e.section)
            if "." not in e.section:
                own.append(f"{e.section}_presets.{params.train.preset}")
        return [*data, "detector", "train", preset, *own]
    if stage == "evaluate":
        return ["evaluate", *data]
    raise ValueError(f"no params declaration for stage {stage!r}")


class UndeclaredParamError(RuntimeError):
    """A stage read a params key its declaration (stage_params, dvc.yaml) does not list."""


def _tree(keys: Iterable[str]) -> dict[str, Any]:
    """['train', 'presets.default'] -> {'train': True, 'presets': {'default': True}}."""
    out: dict[str, Any] = {}
    for key in keys:
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            if node.get(p) is True:
                break
            node = node.setdefault(p, {})
        else:
            node[parts[-1]] = True
    return out


def _undeclared(stage: str, key: str) -> UndeclaredParamError:
    return UndeclaredParamError(
        f"stage {stage!r} reads params {key!r}, which it does not declare; add it to stage_params() in "
        "capmix/params.py and to the stage's params in dvc.yaml")


def _guard(value: Any, allowed: Any, stage: str, where: str) -> Any:
    if allowed is True:
        return value
    if isinstance(value, dict):
        return _GuardedDict(value, allowed, stage, where)
    return _ScopedSection(value, allowed, stage, where)


class _GuardedDict(dict):
    """A params dict (or dict section) whose reads of undeclared keys raise."""

    def __init__(self, data: dict, allowed: dict[str, Any], stage: str, where: str = ""):
        super().__init__(data)
        self._allowed, self._stage, self._where = allowed, stage, where

    def _check(self, key: Any) -> Any:
        if key not in self._allowed:
            raise _undeclared(self._stage, f"{self._where}{key}")
        return self._allowed[key]

    def __getitem__(self, key: Any) -> Any:
        allowed = self._check(key)
        return _guard(super().__getitem__(key), allowed, self._stage, f"{self._where}{key}.")

    def get(self, key: Any, default: Any = None) -> Any:
        allowed = self._check(key)
        return _guard(super().get(key, default), allowed, self._stage, f"{self._where}{key}.")


class _ScopedSection:
    """A typed section of which only some keys are declared."""

    def __init__(self, section: BaseModel, allowed: dict[str, Any], stage: str, where: str):
        self._section, self._allowed, self._stage, self._where = section, allowed, stage, where

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._section, name)
        if name in type(self._section).model_fields:
            if name not in self._allowed:
                raise _undeclared(self._stage, f"{self._where}{name}")
            return _guard(value, self._allowed[name], self._stage, f"{self._where}{name}.")
        return value

    def model_dump(self, **kw: Any) -> dict[str, Any]:  # reads every key: the whole section must be declared
        raise _undeclared(self._stage, self._where.rstrip("."))


class ScopedParams:
    """:class:`Params` as one DVC stage may read it (see :func:`stage_params`)."""

    def __init__(self, params: Params, keys: list[str], stage: str):
        self._params, self._keys, self._stage = params, keys, stage
        self._allowed = _tree(keys)

    def __getattr__(self, name: str) -> Any:
        if name in Params.model_fields:
            if name not in self._allowed:
                raise _undeclared(self._stage, name)
            return _guard(getattr(self._params, name), self._allowed[name], self._stage, f"{name}.")
        attr = getattr(Params, name)
        if callable(attr):  # Params' methods run on this view, so their reads are checked too
            return attr.__get__(self)
        return getattr(self._params, name)

    def model_dump(self, **kw: Any) -> dict[str, Any]:
        """The params dict the detector registry takes; reading an undeclared key raises."""
        return _GuardedDict(self._params.model_dump(**kw), self._allowed, self._stage)
