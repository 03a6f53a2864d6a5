"""Seeded generator of realistic series with labelled anomalies, for tests and benchmarks.

Why not CutAddPaste: CAPMix *trains* on CutAddPaste injections (METHOD.md section 2); evaluating
it on data whose anomalies were made the same way would be circular. Here every anomaly type of
the paper's taxonomy (Fig. 4) comes from its own physical mechanism acting on a latent model of
the signal:

* **base signal** -- K latent factors, each = seasonality (one or two components with random
  integer periods and non-sinusoidal waveforms: harmonic sums, a two-peak "daily traffic" profile)
  + slow piecewise-linear trend + AR(1) noise whose variance follows the seasonal level
  (heteroscedastic). Channel c = level_c + scale_c * (factors @ loadings[:, c] + channel noise).
  Every channel loads on the first ("system load") factor, so channels are correlated.
  A univariate series is the same model with K = C = 1.
* ``shape`` -- the seasonal waveform of one factor is replaced in the segment (square, sawtooth,
  or flattened), so every channel that loads on it changes consistently; the segment covers at
  least ``shape_min_periods`` dominant periods (capped by ``max_anomaly_length``).
* ``correlation`` -- one or more channels decouple from the factors in the segment: either their
  factor loading flips sign, or they follow an independent random walk. Univariate series have no
  correlation to break: a requested correlation anomaly falls back to a ``shape`` anomaly there
  (recorded with ``params["fallback_from"] = "correlation"``) so anomaly counts stay as configured.
* ``seasonality`` -- the clock of every seasonal component runs faster or slower in the segment
  (frequency change); the segment is at least ``seasonality_min_periods`` dominant periods long
  (capped by ``max_anomaly_length``) so the change is observable.
* ``trend`` -- a ramp added to some channels, holding its level (level shift) until the segment
  ends; optionally the level persists to the end of the series as a new, unlabelled normal.
* ``point`` -- 1..``point_max_length`` points: *global* (beyond ``point_global_sigma_range`` sigma
  of the clean channel) or *contextual* (moved towards the channel's far 5 %/95 % quantile: normal
  globally, wrong for its phase).

Anomalies never overlap (at least ``min_gap`` points apart), test anomalies lie in the test
period, and the training period is anomaly-free unless ``train_contamination`` > 0. Each anomaly
modifies exactly its labelled span (with the default ``trend_level_persists=False``).

Determinism: series ``i`` draws from ``SeedSequence(seed, spawn_key=(i, stream))`` with separate
streams for the base signal, the test anomalies and the training anomalies. So the same config
gives bit-identical arrays; series ``i`` does not depend on ``n_series``; and the base signal does
not depend on the anomaly settings (generate with ``anomalies_per_series=0`` to get the clean
twin, or use :func:`generate_detailed`, which also returns the clean values).

Same bits on every CPU: BLAS kernels (``@``) and numpy's vectorised ``sin``/``exp`` are chosen per
CPU and may differ in the last bit, so values are recorded to ``decimals`` decimal places (as a
sensor or an export would; the default 1e-4 is far below the smallest noise) and the catalogue's
float parameters to ``CATALOGUE_DIGITS`` significant digits. A last-bit difference then changes the
file only when it straddles a rounding boundary (odds of about 1e-4 for the default dataset), so
DVC's hash of the default data, and every result computed from it, is the same on any machine.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from scipy.signal import lfilter

from capmix.data.canonical import Series, default_channel_names, write_dataset

__all__ = [
    "ALL_ANOMALY_TYPES",
    "AnomalyConfig",
    "AnomalyType",
    "GeneratorConfig",
    "InjectedAnomaly",
    "SignalConfig",
    "SignalModel",
    "SyntheticSeries",
    "build_signal",
    "generate",
    "generate_dataset",
    "generate_detailed",
    "inject",
    "inject_correlation",
    "inject_point",
    "inject_seasonality",
    "inject_shape",
    "inject_trend",
]


class AnomalyType(StrEnum):
    """Paper Fig. 4 taxonomy."""

    SHAPE = "shape"
    CORRELATION = "correlation"
    SEASONALITY = "seasonality"
    TREND = "trend"
    POINT = "point"


ALL_ANOMALY_TYPES: tuple[AnomalyType, ...] = tuple(AnomalyType)

# Stream indices of the per-series SeedSequence (spawn_key=(series_index, stream)).
STREAM_SIGNAL = 0
STREAM_TEST_ANOMALIES = 1
STREAM_TRAIN_ANOMALIES = 2

BASE_WAVEFORMS = ("sine", "harmonic", "traffic")
SHAPE_WAVEFORMS = ("square", "sawtooth", "flat")
WAVEFORM_GRID = 1024  # phase grid used to normalise a waveform to zero mean / unit std
SAWTOOTH_STD = 1.0 / math.sqrt(3.0)  # std of 2*phase - 1 for phase ~ U(0, 1)
NS_PER_SECOND = 1_000_000_000
TWO_PI = 2.0 * math.pi
MIN_STD = 1e-12  # guards divisions by a constant channel's std


def _ordered(r: tuple[float, float]) -> tuple[float, float]:
    if r[0] > r[1]:
        raise ValueError(f"range {r} must be (low, high) with low <= high")
    return r


FloatRange = Annotated[tuple[float, float], AfterValidator(_ordered)]
IntRange = Annotated[tuple[int, int], AfterValidator(_ordered)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SignalConfig(_Frozen):
    """Base-signal knobs. Amplitudes are in units of the dominant seasonal component (std 1)."""

    period_range: IntRange = (24, 200)
    waveforms: tuple[str, ...] = BASE_WAVEFORMS
    second_seasonality_probability: Probability = 0.5
    second_amplitude_range: FloatRange = (0.2, 0.6)
    max_harmonics: Annotated[int, Field(ge=1)] = 4
    harmonic_decay: Annotated[float, Field(ge=0.0)] = 1.0
    traffic_concentration_range: FloatRange = (2.0, 8.0)
    traffic_second_peak_range: FloatRange = (0.3, 0.9)
    trend_drift_range: FloatRange = (-1.5, 1.5)
    trend_wiggle: Annotated[float, Field(ge=0.0)] = 0.5
    max_trend_breakpoints: Annotated[int, Field(ge=0)] = 3
    noise_std_range: FloatRange = (0.05, 0.3)
    ar_coefficient_range: FloatRange = (0.0, 0.9)
    heteroscedasticity_range: FloatRange = (0.0, 1.0)
    n_latent_factors: Annotated[int, Field(ge=1)] = 3
    common_loading_range: FloatRange = (0.6, 1.0)
    negative_loading_probability: Probability = 0.2
    secondary_loading_std: Annotated[float, Field(ge=0.0)] = 0.25  # small: the common factor dominates
    secondary_loading_clip: Annotated[float, Field(gt=0.0)] = 2.0  # in units of secondary_loading_std
    channel_noise_std_range: FloatRange = (0.05, 0.3)
    level_range: FloatRange = (0.0, 100.0)
    scale_range: FloatRange = (0.5, 20.0)  # drawn log-uniformly: channels have different units

    @model_validator(mode="after")
    def _check(self) -> SignalConfig:
        if self.period_range[0] < 2:
            raise ValueError("period_range must start at >= 2 points")
        unknown = set(self.waveforms) - set(BASE_WAVEFORMS)
        if not self.waveforms or unknown:
            raise ValueError(f"waveforms must be a non-empty subset of {BASE_WAVEFORMS}, got {self.waveforms}")
        if not (0.0 <= self.ar_coefficient_range[0] and self.ar_coefficient_range[1] < 1.0):
            raise ValueError("ar_coefficient_range must lie in [0, 1)")
        if self.scale_range[0] <= 0:
            raise ValueError("scale_range must be positive")
        return self


class AnomalyConfig(_Frozen):
    """Anomaly mechanisms' magnitudes. Sigma = std of the clean channel; ranges give subtle to obvious."""

    min_gap: Annotated[int, Field(ge=1)] = 50
    shape_waveforms: tuple[str, ...] = SHAPE_WAVEFORMS
    shape_amplitude_range: FloatRange = (0.5, 2.0)  # x std of the factor's seasonal part
    shape_min_periods: Annotated[float, Field(ge=0.0)] = 0.5  # a waveform needs part of a cycle to show
    seasonality_frequency_factor_range: FloatRange = (1.5, 3.0)  # faster; slower = 1/factor
    seasonality_slower_probability: Probability = 0.5
    seasonality_min_periods: Annotated[float, Field(ge=0.0)] = 1.0
    trend_magnitude_range: FloatRange = (0.5, 4.0)  # sigma at the end of the ramp
    trend_ramp_fraction_range: FloatRange = (0.3, 1.0)  # of the segment; the rest holds the level
    trend_level_persists: bool = False
    point_max_length: Annotated[int, Field(ge=1)] = 3
    point_global_probability: Probability = 0.5
    point_global_sigma_range: FloatRange = (3.5, 8.0)
    point_contextual_strength_range: FloatRange = (0.6, 1.0)
    contextual_quantiles: FloatRange = (0.05, 0.95)
    correlation_sign_flip_probability: Probability = 0.5
    correlation_walk_sigma_range: FloatRange = (1.0, 3.0)  # walk std at segment end
    max_channel_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.5  # channels hit (multivariate)

    @model_validator(mode="after")
    def _check(self) -> AnomalyConfig:
        unknown = set(self.shape_waveforms) - set(SHAPE_WAVEFORMS)
        if not self.shape_waveforms or unknown:
            raise ValueError(f"shape_waveforms must be a non-empty subset of {SHAPE_WAVEFORMS}")
        if self.seasonality_frequency_factor_range[0] <= 1.0:
            raise ValueError("seasonality_frequency_factor_range must be > 1 (slower = 1/factor)")
        if self.point_global_sigma_range[0] <= 3.0:
            raise ValueError("point_global_sigma_range must be > 3 (global spikes are beyond 3 sigma)")
        q = self.contextual_quantiles
        if not 0.0 <= q[0] < q[1] <= 1.0:
            raise ValueError("contextual_quantiles must satisfy 0 <= low < high <= 1")
        return self


class GeneratorConfig(_Frozen):
    """Everything the generator draws from; stored with the dataset as metadata."""

    name: str = "synthetic"
    n_series: Annotated[int, Field(ge=1)] = 4
    length: Annotated[int, Field(ge=8)] = 5000
    n_channels: Annotated[int, Field(ge=1)] = 1
    train_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.5
    train_contamination: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0  # target fraction of train points
    anomalies_per_series: Annotated[int, Field(ge=0)] = 5
    anomaly_types: tuple[AnomalyType, ...] = ALL_ANOMALY_TYPES
    min_anomaly_length: Annotated[int, Field(ge=1)] = 16
    max_anomaly_length: Annotated[int, Field(ge=1)] = 160
    seed: Annotated[int, Field(ge=0)] = 0
    sampling_interval_s: Annotated[int, Field(ge=1)] = 60
    start_time: datetime = datetime(2024, 1, 1)
    # None keeps full float64 (bit-identical on one machine only; see the module docstring)
    decimals: Annotated[int, Field(ge=0, le=12)] | None = 4
    signal: SignalConfig = SignalConfig()
    anomaly: AnomalyConfig = AnomalyConfig()

    @model_validator(mode="after")
    def _check(self) -> GeneratorConfig:
        if self.min_anomaly_length > self.max_anomaly_length:
            raise ValueError(
                f"min_anomaly_length={self.min_anomaly_length} > max_anomaly_length={self.max_anomaly_length}"
            )
        if not self.anomaly_types:
            raise ValueError("anomaly_types is empty; list at least one of " + ", ".join(ALL_ANOMALY_TYPES))
        if len(set(self.anomaly_types)) != len(self.anomaly_types):
            raise ValueError(f"anomaly_types has duplicates: {list(self.anomaly_types)}")
        train_end = self.train_end
        if not 0 < train_end < self.length:
            raise ValueError(f"train_fraction={self.train_fraction} leaves an empty train or test period")
        return self

    @property
    def train_end(self) -> int:
        """First test point."""
        return int(round(self.train_fraction * self.length))


# ----------------------------------------------------------------------------------------------
# base signal
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Waveform:
    """A periodic shape on phase in [0, 1), normalised to zero mean and unit std."""

    kind: str
    params: tuple[np.ndarray, ...]
    mean: float = 0.0
    std: float = 1.0

    def raw(self, phase: np.ndarray) -> np.ndarray:
        if self.kind == "sine":
            return np.sin(TWO_PI * phase)
        if self.kind == "harmonic":
            amps, phases = self.params
            orders = np.arange(1, amps.size + 1)
            return np.sin(TWO_PI * phase[..., None] * orders + phases) @ amps
        if self.kind == "traffic":  # two von Mises bumps: morning and evening peak
            (centres, concentrations, weights) = self.params
            bumps = np.exp(concentrations * (np.cos(TWO_PI * (phase[..., None] - centres)) - 1.0))
            return bumps @ weights
        raise ValueError(f"unknown waveform {self.kind!r}")

    def __call__(self, phase: np.ndarray) -> np.ndarray:
        return (self.raw(phase) - self.mean) / self.std

    @classmethod
    def draw(cls, rng: np.random.Generator, cfg: SignalConfig) -> _Waveform:
        kind = str(rng.choice(cfg.waveforms))
        if kind == "harmonic":
            n = int(rng.integers(2, cfg.max_harmonics + 1)) if cfg.max_harmonics > 1 else 1
            amps = rng.uniform(0.2, 1.0, n) / np.arange(1, n + 1) ** cfg.harmonic_decay
            amps[0] = 1.0
            params: tuple[np.ndarray, ...] = (amps, rng.uniform(0.0, TWO_PI, n))
        elif kind == "traffic":
            first = rng.uniform(0.0, 1.0)
            centres = np.array([first, (first + rng.uniform(0.3, 0.7)) % 1.0])
            concentrations = rng.uniform(*cfg.traffic_concentration_range, 2)
            weights = np.array([1.0, rng.uniform(*cfg.traffic_second_peak_range)])
            params = (centres, concentrations, weights)
        else:
            params = ()
        wave = cls(kind, params)
        grid = wave.raw(np.arange(WAVEFORM_GRID) / WAVEFORM_GRID)
        return cls(kind, params, float(grid.mean()), max(float(grid.std()), MIN_STD))


@dataclass(frozen=True)
class _Seasonal:
    """One seasonal component: amplitude * waveform(t / period + phase0)."""

    period: float
    phase0: float
    amplitude: float
    waveform: _Waveform

    def phase(self, times: np.ndarray) -> np.ndarray:
        return np.mod(times / self.period + self.phase0, 1.0)

    def __call__(self, times: np.ndarray) -> np.ndarray:
        return self.amplitude * self.waveform(self.phase(times))


@dataclass
class SignalModel:
    """The latent decomposition of one clean series; anomaly mechanisms act on its parts.

    Shapes: ``seasonal``, ``trend``, ``factor_noise`` are (T, K); ``loadings`` (K, C);
    ``channel_noise`` (T, C); ``level``, ``scale`` (C,). ``clean`` = level + scale *
    ((seasonal + trend + factor_noise) @ loadings + channel_noise).
    """

    components: list[list[_Seasonal]]
    seasonal: np.ndarray
    trend: np.ndarray
    factor_noise: np.ndarray
    loadings: np.ndarray
    channel_noise: np.ndarray
    level: np.ndarray
    scale: np.ndarray
    clean: np.ndarray = field(init=False)
    channel_mean: np.ndarray = field(init=False)
    channel_std: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        factors = self.seasonal + self.trend + self.factor_noise
        self.clean = self.level + self.scale * (factors @ self.loadings + self.channel_noise)
        self.channel_mean = self.clean.mean(axis=0)
        self.channel_std = np.maximum(self.clean.std(axis=0), MIN_STD)

    @property
    def n_points(self) -> int:
        return int(self.clean.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.clean.shape[1])

    @property
    def dominant_period(self) -> float:
        """Period of the first seasonal component of the first (system-load) factor."""
        return self.components[0][0].period

    def seasonal_at(self, times: np.ndarray) -> np.ndarray:
        """(len(times), K) seasonal parts evaluated at (possibly warped) times."""
        return np.column_stack([sum(c(times) for c in comps) for comps in self.components])

    def to_channels(self, factor_delta: np.ndarray) -> np.ndarray:
        """Channel-space effect of a change of the factors on ``rows`` (why: keeps correlation)."""
        return self.scale * (factor_delta @ self.loadings)


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    """Stationary AR(1) with unit marginal variance (starts in the stationary distribution)."""
    white = rng.standard_normal(n) * math.sqrt(1.0 - phi * phi)
    white[0] /= math.sqrt(1.0 - phi * phi)
    return lfilter([1.0], [1.0, -phi], white)


def _piecewise_trend(rng: np.random.Generator, n: int, cfg: SignalConfig) -> np.ndarray:
    """Slow drift: linear from 0 to a random total drift, bent at a few random knots."""
    n_breaks = int(rng.integers(0, cfg.max_trend_breakpoints + 1))
    inner = np.sort(rng.choice(np.arange(1, n - 1), size=min(n_breaks, max(n - 2, 0)), replace=False))
    knots_x = np.concatenate(([0], inner, [n - 1])).astype(np.float64)
    drift = rng.uniform(*cfg.trend_drift_range)
    knots_y = drift * knots_x / max(n - 1, 1)
    knots_y[1:-1] += cfg.trend_wiggle * rng.standard_normal(inner.size)
    return np.interp(np.arange(n, dtype=np.float64), knots_x, knots_y)


def build_signal(rng: np.random.Generator, n_points: int, n_channels: int, cfg: SignalConfig) -> SignalModel:
    """Draw one clean series' latent model (no anomalies)."""
    n_factors = min(cfg.n_latent_factors, n_channels)
    times = np.arange(n_points, dtype=np.float64)
    components: list[list[_Seasonal]] = []
    seasonal = np.empty((n_points, n_factors))
    trend = np.empty((n_points, n_factors))
    noise = np.empty((n_points, n_factors))
    for k in range(n_factors):
        comps = [_Seasonal(float(rng.integers(cfg.period_range[0], cfg.period_range[1] + 1)),
                           rng.uniform(), 1.0, _Waveform.draw(rng, cfg))]
        if rng.uniform() < cfg.second_seasonality_probability:
            comps.append(
                _Seasonal(
                    float(rng.integers(cfg.period_range[0], cfg.period_range[1] + 1)),
                    rng.uniform(),
                    rng.uniform(*cfg.second_amplitude_range),
                    _Waveform.draw(rng, cfg),
                )
            )
        components.append(comps)
        seasonal[:, k] = sum(c(times) for c in comps)
        trend[:, k] = _piecewise_trend(rng, n_points, cfg)
        # heteroscedastic: noise grows with the seasonal level (busy hours are noisier)
        s = seasonal[:, k]
        profile = (s - s.min()) / max(float(np.ptp(s)), MIN_STD)
        hetero = rng.uniform(*cfg.heteroscedasticity_range)
        envelope = (1.0 + hetero * profile) / (1.0 + hetero / 2.0)
        noise[:, k] = rng.uniform(*cfg.noise_std_range) * envelope * _ar1(
            rng, n_points, rng.uniform(*cfg.ar_coefficient_range)
        )
    limit = cfg.secondary_loading_clip * cfg.secondary_loading_std
    loadings = np.clip(rng.normal(0.0, cfg.secondary_loading_std, (n_factors, n_channels)), -limit, limit)
    signs = np.where(rng.uniform(size=n_channels) < cfg.negative_loading_probability, -1.0, 1.0)
    loadings[0] = signs * rng.uniform(*cfg.common_loading_range, n_channels)
    channel_noise = rng.standard_normal((n_points, n_channels)) * rng.uniform(
        *cfg.channel_noise_std_range, n_channels
    )
    level = rng.uniform(*cfg.level_range, n_channels)
    log_lo, log_hi = np.log(cfg.scale_range)
    scale = np.exp(rng.uniform(log_lo, log_hi, n_channels))
    return SignalModel(components, seasonal, trend, noise, loadings, channel_noise, level, scale)


# ----------------------------------------------------------------------------------------------
# anomaly mechanisms: each modifies values[start:stop] (only there) and returns its record
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InjectedAnomaly:
    """Ground truth of one anomaly: type, label span [start, stop), channels touched, parameters."""

    type: AnomalyType
    start: int
    stop: int
    channels: tuple[int, ...]
    split: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": str(self.type),
            "start": self.start,
            "stop": self.stop,
            "channels": list(self.channels),
            "split": self.split,
            "params": self.params,
        }


def _pick_channels(rng: np.random.Generator, n_channels: int, cfg: AnomalyConfig) -> np.ndarray:
    """1..max(1, floor(max_channel_fraction * C)) distinct channels, sorted."""
    most = max(1, math.floor(cfg.max_channel_fraction * n_channels))
    k = int(rng.integers(1, most + 1))
    return np.sort(rng.choice(n_channels, size=k, replace=False))


def inject_shape(
    values: np.ndarray, model: SignalModel, start: int, stop: int, rng: np.random.Generator, cfg: AnomalyConfig
) -> InjectedAnomaly:
    """Replace one factor's seasonal waveform in the segment by a square/sawtooth wave or a flat line.

    The factor is drawn with probability proportional to its total absolute loading, so the
    change usually shows in the channels (a factor nobody loads on would give an invisible label).
    """
    weight = np.abs(model.loadings).sum(axis=1)
    k = int(rng.choice(weight.size, p=weight / weight.sum()))
    rows = slice(start, stop)
    times = np.arange(start, stop, dtype=np.float64)
    current = model.seasonal[rows, k]
    kind = str(rng.choice(cfg.shape_waveforms))
    amplitude = rng.uniform(*cfg.shape_amplitude_range) * max(float(model.seasonal[:, k].std()), MIN_STD)
    phase = model.components[k][0].phase(times)
    if kind == "square":
        replacement = amplitude * np.where(phase < 0.5, 1.0, -1.0)
    elif kind == "sawtooth":
        replacement = amplitude * (2.0 * phase - 1.0) / SAWTOOTH_STD
    else:  # flattened period: the waveform stops, only noise and trend remain
        replacement = np.full(stop - start, current.mean())
    delta = np.zeros((stop - start, model.seasonal.shape[1]))
    delta[:, k] = replacement - current
    values[rows] += model.to_channels(delta)
    return InjectedAnomaly(
        AnomalyType.SHAPE, start, stop, tuple(range(model.n_channels)), "",
        {"factor": k, "waveform": kind, "amplitude": float(amplitude)},
    )


def inject_seasonality(
    values: np.ndarray, model: SignalModel, start: int, stop: int, rng: np.random.Generator, cfg: AnomalyConfig
) -> InjectedAnomaly:
    """Run every seasonal clock faster or slower in the segment (a frequency change)."""
    factor = rng.uniform(*cfg.seasonality_frequency_factor_range)
    if rng.uniform() < cfg.seasonality_slower_probability:
        factor = 1.0 / factor
    rows = slice(start, stop)
    origin = start - 1.0  # warp around the last normal point so the first labelled point moves
    warped = origin + (np.arange(start, stop, dtype=np.float64) - origin) * factor
    delta = model.seasonal_at(warped) - model.seasonal[rows]
    values[rows] += model.to_channels(delta)
    return InjectedAnomaly(
        AnomalyType.SEASONALITY, start, stop, tuple(range(model.n_channels)), "", {"frequency_factor": float(factor)}
    )


def inject_trend(
    values: np.ndarray, model: SignalModel, start: int, stop: int, rng: np.random.Generator, cfg: AnomalyConfig
) -> InjectedAnomaly:
    """Add a ramp to some channels, then hold its level to the segment end (level shift)."""
    channels = _pick_channels(rng, model.n_channels, cfg)
    n = stop - start
    magnitude = rng.uniform(*cfg.trend_magnitude_range) * rng.choice([-1.0, 1.0])
    ramp_len = max(1, round(rng.uniform(*cfg.trend_ramp_fraction_range) * n))
    profile = np.minimum(np.arange(1, n + 1) / ramp_len, 1.0)
    shift = magnitude * model.channel_std[channels]
    values[start:stop, channels] += profile[:, None] * shift
    if cfg.trend_level_persists:
        values[stop:, channels] += shift
    return InjectedAnomaly(
        AnomalyType.TREND, start, stop, tuple(int(c) for c in channels), "",
        {"magnitude_sigma": float(magnitude), "ramp_length": int(ramp_len), "persists": cfg.trend_level_persists},
    )


def inject_point(
    values: np.ndarray, model: SignalModel, start: int, stop: int, rng: np.random.Generator, cfg: AnomalyConfig
) -> InjectedAnomaly:
    """Global spike beyond 3 sigma, or a contextual point: normal value range, wrong for its phase."""
    channels = _pick_channels(rng, model.n_channels, cfg)
    rows = slice(start, stop)
    if rng.uniform() < cfg.point_global_probability:
        sigma = rng.uniform(*cfg.point_global_sigma_range)
        sign = rng.choice([-1.0, 1.0])
        target = model.channel_mean[channels] + sign * sigma * model.channel_std[channels]
        values[rows, channels] = np.broadcast_to(target, (stop - start, channels.size))
        params: dict[str, Any] = {"kind": "global", "sigma": float(sign * sigma)}
    else:
        low, high = np.quantile(model.clean[:, channels], cfg.contextual_quantiles, axis=0)
        current = values[rows, channels]
        target = np.where(np.abs(current - low) > np.abs(current - high), low, high)
        strength = rng.uniform(*cfg.point_contextual_strength_range)
        values[rows, channels] = current + strength * (target - current)
        params = {"kind": "contextual", "strength": float(strength)}
    return InjectedAnomaly(AnomalyType.POINT, start, stop, tuple(int(c) for c in channels), "", params)


def inject_correlation(
    values: np.ndarray, model: SignalModel, start: int, stop: int, rng: np.random.Generator, cfg: AnomalyConfig
) -> InjectedAnomaly:
    """Decouple channels from the latent factors (loading sign flip or independent random walk).

    Univariate series have nothing to decouple from: falls back to :func:`inject_shape`.
    """
    if model.n_channels < 2:
        shape = inject_shape(values, model, start, stop, rng, cfg)
        return InjectedAnomaly(
            shape.type, start, stop, shape.channels, "", {**shape.params, "fallback_from": "correlation"}
        )
    channels = _pick_channels(rng, model.n_channels, cfg)
    rows = slice(start, stop)
    # the part of each channel driven by the factors' fluctuations (trend kept: no level jump)
    coupled = model.scale[channels] * ((model.seasonal[rows] + model.factor_noise[rows]) @ model.loadings[:, channels])
    if rng.uniform() < cfg.correlation_sign_flip_probability:
        values[rows, channels] -= 2.0 * coupled
        params: dict[str, Any] = {"kind": "sign_flip"}
    else:
        n = stop - start
        end_sigma = rng.uniform(*cfg.correlation_walk_sigma_range)
        steps = rng.standard_normal((n, channels.size)) * (end_sigma / math.sqrt(n))
        walk = np.cumsum(steps, axis=0) * model.channel_std[channels]
        values[rows, channels] += walk - coupled
        params = {"kind": "random_walk", "end_sigma": float(end_sigma)}
    return InjectedAnomaly(AnomalyType.CORRELATION, start, stop, tuple(int(c) for c in channels), "", params)


INJECTORS = {
    AnomalyType.SHAPE: inject_shape,
    AnomalyType.CORRELATION: inject_correlation,
    AnomalyType.SEASONALITY: inject_seasonality,
    AnomalyType.TREND: inject_trend,
    AnomalyType.POINT: inject_point,
}


def inject(
    kind: AnomalyType | str,
    values: np.ndarray,
    model: SignalModel,
    start: int,
    stop: int,
    rng: np.random.Generator,
    cfg: AnomalyConfig,
) -> InjectedAnomaly:
    """Dispatch to the mechanism of ``kind``; ``values`` (T, C) is modified in place on [start, stop)."""
    if not 0 <= start < stop <= values.shape[0]:
        raise ValueError(f"anomaly span [{start}, {stop}) is not inside [0, {values.shape[0]})")
    return INJECTORS[AnomalyType(kind)](values, model, start, stop, rng, cfg)


# ----------------------------------------------------------------------------------------------
# planning: types, lengths, non-overlapping placement
# ----------------------------------------------------------------------------------------------


def _anomaly_length(kind: AnomalyType, rng: np.random.Generator, model: SignalModel, config: GeneratorConfig) -> int:
    cfg = config.anomaly
    if kind == AnomalyType.POINT:
        return int(rng.integers(1, cfg.point_max_length + 1))
    length = int(rng.integers(config.min_anomaly_length, config.max_anomaly_length + 1))
    min_periods = {AnomalyType.SEASONALITY: cfg.seasonality_min_periods, AnomalyType.SHAPE: cfg.shape_min_periods}
    if kind in min_periods:  # (correlation's univariate fallback to shape keeps its own length)
        floor = math.ceil(min_periods[kind] * model.dominant_period)
        length = max(length, min(floor, config.max_anomaly_length))
    return length


def _place(lengths: np.ndarray, low: int, high: int, gap: int, rng: np.random.Generator, where: str) -> np.ndarray:
    """Start points of non-overlapping segments in [low, high), in list order, >= gap apart."""
    n = lengths.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    slack = (high - low) - int(lengths.sum()) - gap * (n - 1)
    if slack < 0:
        raise ValueError(
            f"{n} anomalies of total length {int(lengths.sum())} with min_gap={gap} do not fit the {where} period "
            f"of {high - low} points. Fix: lower anomalies_per_series / max_anomaly_length / train_contamination, "
            "or raise length."
        )
    cuts = np.sort(rng.integers(0, slack + 1, size=n))  # free points before each segment (cumulative)
    offsets = np.concatenate(([0], np.cumsum(lengths[:-1] + gap)))
    return low + cuts + offsets


def _plan(
    kinds: list[AnomalyType], lengths: list[int], rng: np.random.Generator, config: GeneratorConfig,
    low: int, high: int, where: str,
) -> list[tuple[AnomalyType, int, int]]:
    """Shuffle the anomalies into a random time order and place them without overlap."""
    order = rng.permutation(len(kinds))
    kinds = [kinds[i] for i in order]
    sizes = np.array([lengths[i] for i in order], dtype=np.int64)
    starts = _place(sizes, low, high, config.anomaly.min_gap, rng, where)
    return [(k, int(s), int(s + n)) for k, s, n in zip(kinds, starts, sizes)]


def _test_anomalies(
    config: GeneratorConfig, series_index: int, rng: np.random.Generator, model: SignalModel
) -> tuple[list[AnomalyType], list[int]]:
    """Round-robin types over the dataset: every type appears once there are >= len(types) anomalies."""
    n, types = config.anomalies_per_series, config.anomaly_types
    kinds = [types[(series_index * n + j) % len(types)] for j in range(n)]
    return kinds, [_anomaly_length(k, rng, model, config) for k in kinds]


def _train_anomalies(
    config: GeneratorConfig, rng: np.random.Generator, model: SignalModel
) -> tuple[list[AnomalyType], list[int]]:
    """Random types until their total length reaches train_contamination * training points.

    The last anomaly is shortened (not below its type's minimum) so the labelled fraction lands
    close to the target instead of overshooting by up to ``max_anomaly_length``.
    """
    target = round(config.train_contamination * config.train_end)
    kinds: list[AnomalyType] = []
    lengths: list[int] = []
    total = 0
    while total < target:
        kind = config.anomaly_types[int(rng.integers(len(config.anomaly_types)))]
        shortest = 1 if kind == AnomalyType.POINT else config.min_anomaly_length
        length = min(_anomaly_length(kind, rng, model, config), max(target - total, shortest))
        kinds.append(kind)
        lengths.append(length)
        total += length
    return kinds, lengths


# ----------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticSeries:
    """A generated series with its ground truth: the clean twin and the anomaly catalogue."""

    series: Series
    clean: np.ndarray
    anomalies: tuple[InjectedAnomaly, ...]


#: significant digits of the catalogue's float parameters in the dataset file (see the module docstring)
CATALOGUE_DIGITS = 10


def _portable(value: Any) -> Any:
    """``value`` with every float rounded to ``CATALOGUE_DIGITS`` significant digits (for the file)."""
    if isinstance(value, float):
        return float(f"{value:.{CATALOGUE_DIGITS}g}")
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(v) for v in value]
    return value


def _rng(seed: int, series_index: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(series_index, stream))))


def _timestamps(config: GeneratorConfig) -> np.ndarray:
    start = config.start_time
    if start.tzinfo is not None:
        start = start.astimezone(UTC).replace(tzinfo=None)
    origin = np.datetime64(start, "ns")
    step = np.timedelta64(config.sampling_interval_s * NS_PER_SECOND, "ns")
    return origin + np.arange(config.length, dtype=np.int64) * step


def _generate_one(config: GeneratorConfig, index: int, timestamps: np.ndarray) -> SyntheticSeries:
    model = build_signal(_rng(config.seed, index, STREAM_SIGNAL), config.length, config.n_channels, config.signal)
    values = model.clean.copy()
    labels = np.zeros(config.length, dtype=np.int8)
    records: list[InjectedAnomaly] = []
    train_end = config.train_end
    streams = (
        ("test", _rng(config.seed, index, STREAM_TEST_ANOMALIES), train_end, config.length),
        ("train", _rng(config.seed, index, STREAM_TRAIN_ANOMALIES), 0, train_end),
    )
    for split, rng, low, high in streams:
        if split == "test":
            kinds, lengths = _test_anomalies(config, index, rng, model)
        else:
            kinds, lengths = _train_anomalies(config, rng, model)
        for kind, start, stop in _plan(kinds, lengths, rng, config, low, high, split):
            record = inject(kind, values, model, start, stop, rng, config.anomaly)
            labels[start:stop] = 1
            records.append(
                InjectedAnomaly(record.type, start, stop, record.channels, split, record.params)
            )
    records.sort(key=lambda r: r.start)
    clean = model.clean
    if config.decimals is not None:
        # the clean twin and each point's anomaly offset are rounded apart, so values == clean
        # exactly wherever no anomaly acted, as without rounding
        clean = np.round(clean, config.decimals)
        values = clean + np.round(values - model.clean, config.decimals)
    series = Series(
        name=f"{config.name}-{index:03d}",
        values=values,
        labels=labels,
        train_end=train_end,
        timestamps=timestamps.copy(),
        channels=default_channel_names(config.n_channels),
    )
    return SyntheticSeries(series, clean, tuple(records))


def generate_detailed(config: GeneratorConfig) -> list[SyntheticSeries]:
    """Series plus ground truth (clean values, anomaly catalogue); deterministic for a seed."""
    timestamps = _timestamps(config)
    return [_generate_one(config, i, timestamps) for i in range(config.n_series)]


def generate(config: GeneratorConfig) -> list[Series]:
    """Labelled synthetic series; same config (seed included) => bit-identical arrays."""
    return [item.series for item in generate_detailed(config)]


def generate_dataset(config: GeneratorConfig, path: str | os.PathLike[str]) -> Path:
    """Generate and write one dataset file; metadata holds the config and the anomaly catalogue.

    Rebuild the config from the file with ``GeneratorConfig.model_validate(meta["generator_config"])``.
    """
    items = generate_detailed(config)
    metadata = {
        "name": config.name,
        "generator": f"{__name__}.generate",
        "generator_config": config.model_dump(mode="json"),
        "anomalies": {item.series.name: [_portable(a.to_dict()) for a in item.anomalies] for item in items},
    }
    return write_dataset([item.series for item in items], path, metadata)
