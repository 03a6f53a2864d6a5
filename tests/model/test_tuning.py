"""Optuna tuning: search space, resumable studies, pruning, no test-data access, outputs."""

import numpy as np
import optuna
import pytest
import yaml

from capmix.config import DetectorConfig
from capmix.data.canonical import Series
from capmix.data.synthetic import GeneratorConfig, generate
from capmix.tuning import (
    LAYER_CHOICES,
    TuneConfig,
    plot_study,
    read_best_params,
    tune,
    write_best_params,
)

TINY = DetectorConfig(
    window=32, stride=8, kernel=4, features=8, max_epochs=3, min_epochs=1, min_patch=6, batch_size=64
)


def _hide_test(s: Series) -> Series:
    """Same training period, test period all NaN: any use of test data fails loudly in fit."""
    values = s.values.copy()
    values[s.train_end :] = np.nan
    return Series(s.name, values, s.labels, s.train_end, s.timestamps, s.channels)


def _no_test(self):
    raise AssertionError("tuning read Series.test")


@pytest.fixture(scope="module")
def series():
    return [_hide_test(s) for s in generate(GeneratorConfig(n_series=3, length=2000, n_channels=1, seed=0))]


@pytest.fixture(scope="module")
def study(series, tmp_path_factory):
    """3 trials, then the same study resumed with 2 more; test data hidden throughout."""
    url = f"sqlite:///{tmp_path_factory.mktemp('optuna') / 'sub' / 'optuna.db'}"
    cfg = TuneConfig(
        n_trials=3, storage=url, study_name="t", max_epochs=2, n_series=2, search_layers=True, seed=1
    )
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Series, "test", property(_no_test))
        first = tune(series, TINY, cfg, on_trial=lambda *a: calls.append(a))
        second = tune(series, TINY, cfg.model_copy(update={"n_trials": 2}))
    return cfg, first, second, calls


def test_best_params_inside_ranges(study):
    cfg, first, _, _ = study
    assert first.n_trials == first.n_complete == 3 and first.n_new == 3
    lo, hi = cfg.gamma_range
    assert lo <= first.best_params["gamma"] <= hi
    lo, hi = cfg.alpha_range
    assert lo <= first.best_params["alpha"] <= hi
    assert ",".join(map(str, first.best_params["mixup_layers"])) in LAYER_CHOICES
    assert 0.0 <= first.best_value <= 1.0
    assert first.best_value == max(r["value"] for r in first.trials)


def test_on_trial_called_after_every_trial(study):
    _, first, _, calls = study
    assert [c[0] for c in calls] == [0, 1, 2]
    number, params, value, state = calls[0]
    assert set(params) == {"gamma", "alpha", "mixup_layers"} and isinstance(params["mixup_layers"], list)
    assert state == "COMPLETE" and value == first.trials[0]["value"]


def test_resume_adds_trials(study):
    _, first, second, _ = study
    assert second.n_trials == 5 and second.n_new == 2
    assert [r["number"] for r in second.trials] == [0, 1, 2, 3, 4]
    assert second.trials[:3] == first.trials  # earlier trials are kept, not re-run
    # a resumed run draws new parameters instead of replaying the first run's random start-up
    assert {r["gamma"] for r in second.trials[3:]}.isdisjoint(r["gamma"] for r in first.trials)
    assert second.best_value >= first.best_value


def test_report_steps_and_epoch_budget(study):
    _, _, second, _ = study
    for row in second.trials:
        # max_epochs=2 override, 2 of 3 series (n_series): global steps 0..3, one AUC per series
        assert row["last_step"] == 3
        assert len(row["series_auc"]) == 2
        assert row["value"] == pytest.approx(np.mean(row["series_auc"]))


def test_other_data_refuses_to_reuse_study(study, series):
    cfg, *_ = study
    with pytest.raises(ValueError, match="study_name"):
        tune(series[1:], TINY, cfg)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_pruning_stops_training(series, tmp_path):
    cfg = TuneConfig(n_trials=2, storage=f"sqlite:///{tmp_path / 'p.db'}", study_name="p", n_series=2)
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Series, "test", property(_no_test))
        result = tune(series, TINY, cfg, on_trial=lambda *a: calls.append(a), pruner=AlwaysPrune())
    assert result.n_trials == result.n_pruned == 2 and result.n_complete == 0
    assert [c[3] for c in calls] == ["PRUNED", "PRUNED"]
    # pruned at the first report: the first epoch of the first series, nothing trained after it
    assert all(r["last_step"] == 0 and r["series_auc"] is None for r in result.trials)
    assert result.best_params == {} and result.best_value is None
    with pytest.raises(ValueError, match="no completed trial"):
        write_best_params(result, tmp_path / "best.yaml")


def test_best_params_round_trip(study, tmp_path):
    _, _, second, _ = study
    path = write_best_params(second, tmp_path / "tuning" / "best_params.yaml")
    assert read_best_params(path) == second.best_params
    doc = yaml.safe_load(path.read_text())
    prov = doc["provenance"]
    assert prov["study_name"] == "t" and prov["n_trials"] == 5 and prov["best_value"] == second.best_value
    assert prov["timestamp"]
    assert [p.name for p in path.parent.iterdir()] == ["best_params.yaml"]  # no temp file left
    assert TINY.replace(**read_best_params(path)).gamma == second.best_params["gamma"]


def test_read_best_params_missing_and_invalid(tmp_path):
    assert read_best_params(tmp_path / "absent.yaml") == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("best_params: {gamma: 0.5}\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        read_best_params(bad)


def test_plot_written(study, tmp_path):
    _, _, second, _ = study
    path = plot_study(second.trials, tmp_path / "plots" / "tuning.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["tuning.png"]
    plot_study([], tmp_path / "empty.png")  # no trials yet: still a figure
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_tune_config_validation():
    with pytest.raises(ValueError):
        TuneConfig(gamma_range=(0.9, 3.0))  # gamma must stay > 1
    with pytest.raises(ValueError):
        TuneConfig(alpha_range=(0.5, 0.1))
    with pytest.raises(ValueError):
        TuneConfig(n_trails=3)  # extra="forbid" catches typos
    cfg = TuneConfig.from_params({"tune": {"n_trials": 7, "enabled": True}}, study_name="x")
    assert (cfg.n_trials, cfg.enabled, cfg.study_name, cfg.enabled) == (7, True, "x", True)
    assert TuneConfig().storage == "sqlite:///optuna.db"


def test_opening_a_fresh_study_database_retries_a_lost_schema_race(monkeypatch, tmp_path):
    """Two Dask workers creating a fresh sqlite schema at once: the loser sees "table already exists"."""
    import optuna
    from sqlalchemy.exc import OperationalError

    from capmix import tuning

    calls = []
    real = optuna.storages.RDBStorage

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("CREATE TABLE study_directions", {}, Exception("table study_directions already exists"))
        return real(*args, **kwargs)

    monkeypatch.setattr(optuna.storages, "RDBStorage", flaky)
    storage = tuning._open_storage(f"sqlite:///{tmp_path}/optuna.db")
    assert len(calls) == 2 and storage is not None
