"""Synthetic generator: determinism, label placement, per-type mechanisms, realism checks."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from capmix.data.canonical import read_dataset, read_metadata
from capmix.data.synthetic import (
    ALL_ANOMALY_TYPES,
    AnomalyConfig,
    AnomalyType,
    GeneratorConfig,
    generate,
    generate_dataset,
    generate_detailed,
)

LENGTH = 3000
MIN_PAIR_CORRELATION = 0.5  # at least one channel pair of a multivariate series


def _config(**kw) -> GeneratorConfig:
    base = {"n_series": 3, "length": LENGTH, "n_channels": 3, "seed": 7}
    return GeneratorConfig(**{**base, **kw})


def _spans(labels: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.concatenate(([0], labels.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def test_shapes_dtypes_and_finite() -> None:
    cfg = _config()
    series = generate(cfg)
    assert len(series) == cfg.n_series
    for s in series:
        assert s.values.shape == (LENGTH, 3) and s.values.dtype == np.float64
        assert s.labels is not None and s.labels.shape == (LENGTH,) and s.labels.dtype == np.int8
        assert np.isfinite(s.values).all()
        assert s.train_end == cfg.train_end == LENGTH // 2
        assert s.channels == ("ch0", "ch1", "ch2")
        assert s.timestamps is not None and s.timestamps.dtype == np.dtype("datetime64[ns]")
        steps = np.diff(s.timestamps).astype(np.int64)
        assert (steps == cfg.sampling_interval_s * 1_000_000_000).all()
    univariate = generate(_config(n_channels=1))
    assert all(s.values.shape == (LENGTH, 1) for s in univariate)


def test_deterministic_for_a_seed() -> None:
    a, b = generate(_config()), generate(_config())
    for x, y in zip(a, b):
        assert x.equals(y)
        assert x.values.tobytes() == y.values.tobytes()
    c = generate(_config(seed=8))
    assert not np.array_equal(a[0].values, c[0].values)


def test_series_independent_of_n_series() -> None:
    few, many = generate(_config(n_series=2, anomalies_per_series=0)), generate(_config(n_series=5, anomalies_per_series=0))
    for x, y in zip(few, many):
        assert x.equals(y)


def test_labels_only_in_test_period_by_default() -> None:
    for item in generate_detailed(_config()):
        s = item.series
        assert s.labels[: s.train_end].sum() == 0
        assert s.labels[s.train_end :].sum() > 0
        assert all(a.split == "test" and a.start >= s.train_end and a.stop <= s.n_points for a in item.anomalies)
        assert len(item.anomalies) == 5


def test_train_contamination_labels_training_period() -> None:
    target = 0.04
    for item in generate_detailed(_config(train_contamination=target)):
        s = item.series
        fraction = s.labels[: s.train_end].mean()
        assert target * 0.5 <= fraction <= target * 1.5
        train = [a for a in item.anomalies if a.split == "train"]
        assert train and all(a.stop <= s.train_end for a in train)


def test_anomalies_do_not_overlap_and_respect_gap() -> None:
    cfg = _config(anomalies_per_series=8, train_contamination=0.05)
    for item in generate_detailed(cfg):
        spans = sorted((a.start, a.stop) for a in item.anomalies)
        for (_, stop), (start, _) in zip(spans, spans[1:]):
            assert start - stop >= cfg.anomaly.min_gap
        # label runs are exactly the anomaly spans
        assert _spans(item.series.labels) == spans


def test_every_type_appears_when_requested() -> None:
    for channels in (1, 3):
        items = generate_detailed(_config(n_channels=channels, anomalies_per_series=len(ALL_ANOMALY_TYPES)))
        requested = set(ALL_ANOMALY_TYPES)
        for item in items:
            seen = {a.type for a in item.anomalies}
            if channels > 1:
                assert seen == requested
            else:  # univariate: correlation falls back to a shape anomaly
                assert seen == requested - {AnomalyType.CORRELATION}
                fallbacks = [a for a in item.anomalies if a.params.get("fallback_from") == "correlation"]
                assert len(fallbacks) == 1 and fallbacks[0].type == AnomalyType.SHAPE


@pytest.mark.parametrize("kind", list(AnomalyType))
@pytest.mark.parametrize("channels", [1, 4])
def test_each_type_changes_signal_where_labelled_and_only_there(kind: AnomalyType, channels: int) -> None:
    cfg = _config(n_channels=channels, anomaly_types=(kind,), anomalies_per_series=4, train_contamination=0.03)
    clean = generate(cfg.model_copy(update={"anomalies_per_series": 0, "train_contamination": 0.0}))
    items = generate_detailed(cfg)
    for item, twin in zip(items, clean):
        s = item.series
        np.testing.assert_array_equal(item.clean, twin.values)  # base signal does not see anomaly settings
        changed = (s.values != twin.values).any(axis=1)
        labelled = s.labels.astype(bool)
        assert not (changed & ~labelled).any(), "signal changed outside the labels"
        for a in item.anomalies:
            seg = slice(a.start, a.stop)
            assert changed[seg].any(), f"{a.type} span [{a.start}, {a.stop}) left the signal unchanged"
            expected = AnomalyType.SHAPE if (kind == AnomalyType.CORRELATION and channels == 1) else kind
            assert a.type == expected
            # untouched channels stay untouched
            others = np.setdiff1d(np.arange(channels), a.channels)
            np.testing.assert_array_equal(s.values[seg][:, others], twin.values[seg][:, others])


def test_magnitudes_range_from_subtle_to_obvious() -> None:
    cfg = _config(n_series=6, anomaly_types=(AnomalyType.TREND,), anomalies_per_series=4)
    peaks = [
        float(np.max(np.abs(item.series.values[a.start : a.stop] - item.clean[a.start : a.stop])[:, list(a.channels)]
                     / item.clean[:, list(a.channels)].std(axis=0)))
        for item in generate_detailed(cfg)
        for a in item.anomalies
    ]
    assert min(peaks) < 1.5 and max(peaks) > 3.0


def test_global_points_beyond_three_sigma() -> None:
    cfg = _config(
        n_series=4, anomaly_types=(AnomalyType.POINT,), anomalies_per_series=6,
        anomaly=AnomalyConfig(point_global_probability=1.0),
    )
    for item in generate_detailed(cfg):
        mean, std = item.clean.mean(axis=0), item.clean.std(axis=0)
        for a in item.anomalies:
            z = (item.series.values[a.start : a.stop, list(a.channels)] - mean[list(a.channels)]) / std[list(a.channels)]
            assert (np.abs(z) > 3.0).all()


def test_contextual_points_stay_in_normal_range() -> None:
    cfg = _config(
        n_series=4, anomaly_types=(AnomalyType.POINT,), anomalies_per_series=6,
        anomaly=AnomalyConfig(point_global_probability=0.0),
    )
    for item in generate_detailed(cfg):
        lo, hi = item.clean.min(axis=0), item.clean.max(axis=0)
        for a in item.anomalies:
            v = item.series.values[a.start : a.stop, list(a.channels)]
            assert ((v >= lo[list(a.channels)]) & (v <= hi[list(a.channels)])).all()


def test_trend_level_can_persist() -> None:
    cfg = _config(
        n_series=1, anomaly_types=(AnomalyType.TREND,), anomalies_per_series=1,
        anomaly=AnomalyConfig(trend_level_persists=True),
    )
    item = generate_detailed(cfg)[0]
    a = item.anomalies[0]
    after = item.series.values[a.stop :, list(a.channels)] - item.clean[a.stop :, list(a.channels)]
    assert np.allclose(after, after[0]) and np.abs(after[0]).min() > 0


def test_multivariate_channels_are_correlated() -> None:
    for s in generate(_config(n_series=5, n_channels=4, anomalies_per_series=0)):
        corr = np.corrcoef(s.values.T)
        pairs = np.abs(corr[np.triu_indices(s.n_channels, 1)])
        assert pairs.max() > MIN_PAIR_CORRELATION


def test_infeasible_configs_fail_clearly() -> None:
    with pytest.raises(ValueError, match="do not fit the test period"):
        generate(_config(length=400, anomalies_per_series=10))
    with pytest.raises(ValidationError, match="min_anomaly_length"):
        GeneratorConfig(min_anomaly_length=50, max_anomaly_length=10)
    with pytest.raises(ValidationError):
        GeneratorConfig(anomaly_types=("shape", "bogus"))
    with pytest.raises(ValidationError):
        GeneratorConfig(n_series=1, unknown_field=3)


def test_generate_dataset_round_trip(tmp_path: Path) -> None:
    cfg = _config(train_contamination=0.02)
    path = generate_dataset(cfg, tmp_path / "synth" / "ds.parquet")
    written = read_dataset(path)
    for x, y in zip(generate(cfg), written):
        assert x.equals(y)
    meta = read_metadata(path)
    assert GeneratorConfig.model_validate(meta["generator_config"]) == cfg
    assert meta["labelled"] is True and meta["name"] == cfg.name
    catalogue = meta["anomalies"][written[0].name]
    assert {a["type"] for a in catalogue} <= {str(t) for t in ALL_ANOMALY_TYPES}
    assert sum(a["stop"] - a["start"] for a in catalogue) == int(written[0].labels.sum())


_WRITE_DEFAULT = """
import sys
from capmix.config import load_params
from capmix.data.synthetic import generate_dataset
generate_dataset(load_params(sys.argv[1]).generate.generator(), sys.argv[2])
"""


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="OPENBLAS_CORETYPE names x86 kernels; this machine is not x86-64")
def test_default_dataset_file_is_the_same_with_another_blas_kernel(tmp_path: Path) -> None:
    # The default data's DVC hash must not depend on the CPU. numpy's OpenBLAS picks its kernel
    # per CPU (OPENBLAS_CORETYPE forces one): the oldest x86-64 kernel sums the generator's
    # matrix products in another order than this CPU's, which changed the last bits of the values
    # (and the file's md5) before the generator rounded them (``decimals``).
    root = Path(__file__).resolve().parents[2]
    files = []
    for coretype in (None, "Prescott"):
        env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
        out = tmp_path / f"{coretype or 'native'}.parquet"
        subprocess.run([sys.executable, "-c", _WRITE_DEFAULT, str(root / "params.yaml"), str(out)],
                       env=env, check=True, cwd=root)
        files.append(out.read_bytes())
    assert files[0] == files[1]


def test_rounding_keeps_values_equal_to_the_clean_twin_outside_anomalies() -> None:
    for decimals in (None, 2):
        item = generate_detailed(_config(n_series=1, decimals=decimals))[0]
        outside = item.series.labels == 0
        assert np.array_equal(item.series.values[outside], item.clean[outside])
        if decimals is not None:
            assert np.array_equal(item.clean, np.round(item.clean, decimals))
