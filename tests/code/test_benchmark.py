"""The benchmark harness: cells, resume, digests, aggregation, report; contamination; studies."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from capmix.evaluation.benchmark import (
    BenchmarkConfig,
    Cell,
    CellResult,
    DatasetSpec,
    cell_digest,
    load_cells,
    markdown_table,
    pending,
    plan,
    run_cell,
    summarise,
    write_report,
)
from capmix.config import load_params
from capmix.evaluation.contamination import contaminate
from capmix.data.canonical import Series
from capmix.evaluation.evaluate import SeriesResult, aggregate, evaluate_series
from capmix.evaluation.studies import ContaminationStudy, SensitivityStudy, parse_point, study_config


def _series(name: str, seed: int = 0, n: int = 3000) -> Series:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / 50) + 0.05 * rng.standard_normal(n)
    y = np.zeros(n, dtype=np.int8)
    for a in (2100, 2600):  # two test anomalies: a level burst
        x[a:a + 30] += 3.0
        y[a:a + 30] = 1
    x[700:720] += 3.0  # one labelled training anomaly (for contamination)
    y[700:720] = 1
    return Series(name=name, values=x[:, None], labels=y, train_end=1500)


@pytest.fixture
def params():
    return load_params("params.yaml").model_dump()  # the dict the benchmark harness takes


SPEC = DatasetSpec(preset="default")


def test_run_cell_writes_json_that_round_trips(tmp_path, params):
    s = _series("a")
    cell = Cell("toy", s.name, "iforest", 0)
    r = run_cell(cell, s, params, SPEC, tmp_path)
    assert cell.path(tmp_path).exists()
    back = CellResult.from_json(cell.path(tmp_path).read_text())
    assert back.cell == cell
    assert back.result.flat() == pytest.approx(r.result.flat(), nan_ok=True)
    assert back.extra["config_digest"] == cell_digest(cell, params, SPEC, None)
    assert r.n_train == 1500 and r.n_test == 1500


def test_series_result_dict_round_trip_keeps_aggregates():
    rng = np.random.default_rng(1)
    y = np.zeros(2000, np.int8)
    y[500:540] = 1
    y[1500:1510] = 1
    s = rng.random(2000) + 2 * y
    res = evaluate_series("x", s, y, 1.5, 64, 16, ucr_widen=100)
    back = SeriesResult.from_dict(json.loads(json.dumps(res.to_dict())))
    assert aggregate([back]) == pytest.approx(aggregate([res]), nan_ok=True)


def test_pending_skips_done_cells_and_redoes_cells_with_other_params(tmp_path, params):
    s = _series("a")
    cells = [Cell("toy", s.name, m, 0) for m in ("random", "iforest")]
    digests = {c: cell_digest(c, params, SPEC, None) for c in cells}
    assert pending(cells, tmp_path, digests) == cells
    for c in cells:
        run_cell(c, s, params, SPEC, tmp_path)
    assert pending(cells, tmp_path, digests) == []
    changed = {**params, "baselines": {**params["baselines"], "iforest": {"n_estimators": 7}}}
    new = {c: cell_digest(c, changed, SPEC, None) for c in cells}
    assert pending(cells, tmp_path, new) == [cells[1]]  # only the iforest cell depends on that key


def test_plan_covers_the_grid_and_rejects_unknown_methods():
    series = {"toy": [_series("a"), _series("b")]}
    cfg = BenchmarkConfig(datasets={"toy": SPEC}, methods=["random", "iforest"], seeds=[0, 1, 2])
    cells = plan(cfg, series)
    assert len(cells) == 2 * 3 * 2 and len(set(cells)) == len(cells)
    with pytest.raises(ValueError, match="unknown detector"):
        plan(cfg.model_copy(update={"methods": ["nope"]}), series)


def test_summarise_means_and_stds_over_seeds_and_marks_partial_groups(tmp_path, params):
    series = [_series("a", 0), _series("b", 1)]
    cells = [Cell("toy", s.name, "random", seed) for seed in (0, 1) for s in series]
    results = [run_cell(c, s, params, SPEC, tmp_path) for c, s in zip(cells, series * 2)]
    rows = summarise(load_cells(tmp_path), cells)
    assert len(rows) == 1
    row = rows[0]
    key = "window/oracle/rpa_f1_eq13"
    per_seed = [aggregate([r.result for r in results if r.cell.seed == seed])[key] for seed in (0, 1)]
    assert row[f"{key}/mean"] == pytest.approx(np.mean(per_seed))
    assert row[f"{key}/std"] == pytest.approx(np.std(per_seed))
    assert row["seeds"] == 2 and row["n_series"] == 2 and row["complete"]
    extra = cells + [Cell("toy", "c", "random", 0)]  # planned but never run
    assert summarise(load_cells(tmp_path), extra)[0]["complete"] is False
    md = markdown_table(rows, paper={"toy": {"random": 12.5}})
    assert "| toy | random | 2 | 2 |" in md and "12.50" in md and "±" in md
    csv_path, md_path = write_report(rows, tmp_path)
    assert csv_path.read_text().startswith("dataset,method") and md_path.exists()


def test_benchmark_config_rejects_unknown_keys():
    with pytest.raises(ValueError):
        BenchmarkConfig.model_validate({"sedes": [0]})


# ----------------------------------------------------------------------------- contamination
def test_contamination_pastes_unlabelled_copies_of_real_anomalies():
    s = _series("a")
    x, y = s.train
    out, y_out, mask = contaminate(x, y, 4.0, np.random.default_rng(0))
    assert np.array_equal(y_out, y)  # the copies stay unlabelled
    assert mask.sum() == 4 * 20  # four copies of the one 20-point run
    assert not (mask & y.astype(bool)).any()  # never on top of a real anomaly
    assert np.array_equal(out[~mask], x[~mask])
    same, _, none = contaminate(x, y, 0.0, np.random.default_rng(0))
    assert not none.any() and np.array_equal(same, x)


def test_contamination_needs_labelled_training_anomalies():
    x = np.zeros((100, 1))
    with pytest.raises(ValueError, match="no.*|none"):
        contaminate(x, np.zeros(100), 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=">= 0"):
        contaminate(x, np.ones(100), -1.0, np.random.default_rng(0))


def test_contaminated_cell_records_what_was_pasted(tmp_path, params):
    s = _series("a")
    r = run_cell(Cell("toy", s.name, "random", 0, study="x2", contamination=2.0), s, params, SPEC, tmp_path)
    assert r.extra["contamination_points"] == 40


# ----------------------------------------------------------------------------- studies
def test_study_cells_and_points():
    series = {"aiops": [_series("a"), _series("b")], "asd": [_series("c")]}
    c = ContaminationStudy(factors=[0.5, 8], methods=["capmix", "cap"]).cells(series, seeds=[0])
    assert len(c) == 2 * 2 * 2 and {x.study for x in c} == {"x0.5", "x8"}
    sens = SensitivityStudy(gammas=[1.5, 3], alphas=[0.1]).cells(series, seeds=[0, 1])
    assert len(sens) == 2 * 1 * 2 * 3
    assert parse_point(sens[0].study) == {"gamma": 1.5, "alpha": 0.1}
    assert dict(sens[0].overrides) == {"alpha": 0.1, "gamma": 1.5}


def test_study_config_reads_params_and_checks_datasets(params):
    bound = study_config(params, "sensitivity")
    cfg = bound.restrict(BenchmarkConfig.model_validate(params["benchmark"]))
    assert set(cfg.datasets) == set(params["studies"]["sensitivity"]["datasets"])
    with pytest.raises(ValueError, match="not in params benchmark.datasets"):
        bound.restrict(BenchmarkConfig())
    with pytest.raises(ValueError, match="unknown study"):
        study_config(params, "nope")


def test_study_plots_are_written(tmp_path):
    rows = [{"dataset": "d", "method": m, "study": f"x{f:g}", "window/oracle/rpa_f1_eq13/mean": v,
             "window/oracle/rpa_f1_eq13/std": 0.0, "window/oracle/rpa_precision_micro/mean": v,
             "window/oracle/rpa_precision_micro/std": 0.0}
            for m in ("capmix", "cap") for f, v in ((0.5, 0.3), (2, 0.4))]
    p = ContaminationStudy().plot(rows, tmp_path / "c.png")
    assert p.stat().st_size > 1000
    rows = [{"dataset": "d", "method": "capmix", "study": f"gamma={g},alpha={a}",
             "window/oracle/rpa_f1_eq13/mean": g * a} for g in (1.5, 3) for a in (0.1, 0.2)]
    assert SensitivityStudy().plot(rows, tmp_path / "s.png").stat().st_size > 1000
    assert math.isfinite(rows[0]["window/oracle/rpa_f1_eq13/mean"])


def test_best_epoch_on_test_is_recorded_for_capmix_cells_only(tmp_path, params):
    s = _series("a")
    spec = DatasetSpec(preset="default", ucr_widen=100, best_epoch_on_test=True)
    plain = DatasetSpec(preset="default", ucr_widen=100)
    cap = run_cell(Cell("toy", s.name, "cap", 0), s, params, spec, tmp_path, max_epochs=2)
    assert cap.result.ucr_epoch in (1, 2) and cap.result.ucr_epoch_hit is not None
    assert CellResult.from_json(Cell("toy", s.name, "cap", 0).path(tmp_path).read_text()).result.ucr_epoch \
        == cap.result.ucr_epoch
    base = run_cell(Cell("toy", s.name, "iforest", 0), s, params, spec, tmp_path)
    assert base.result.ucr_hit is not None and base.result.ucr_epoch_hit is None
    # the flag changes the digest of the cells it changes, and only those: baseline cells stay valid
    assert cell_digest(Cell("toy", "a", "iforest", 0), params, spec, None) == \
        cell_digest(Cell("toy", "a", "iforest", 0), params, plain, None)
    assert cell_digest(Cell("toy", "a", "cap", 0), params, spec, None) != \
        cell_digest(Cell("toy", "a", "cap", 0), params, plain, None)


def test_ucr_accuracy_plot_is_written(tmp_path):
    from capmix.evaluation.plots import plot_ucr_accuracy

    rows = [{"dataset": "ucr", "method": "capmix", "n_series": 3, "ucr/accuracy/mean": 0.4,
             "ucr_best_epoch/accuracy/mean": 0.6},
            {"dataset": "ucr", "method": "ocsvm", "n_series": 3, "ucr/accuracy/mean": 0.3},
            {"dataset": "ucr", "method": "x", "n_series": 3}]  # no UCR numbers: left out
    p = plot_ucr_accuracy(rows, tmp_path / "u.png", paper={"capmix": 71.89})
    assert p.stat().st_size > 1000


def test_halves_number_ucr_series_by_name_and_others_by_position():
    """UCR's ``NNN_`` is the series number; a KPI ID that starts with hex digits is not a number."""
    from capmix.evaluation.benchmark import half_of, series_number

    assert series_number("250_UCR_x", 1) == 250 and half_of("001_DISTORTED1sddb40", 2) == "odd"
    assert series_number("0efb375b-b902-3661", 3) == 3  # not 0
    assert series_number("301c70d8-1630-35ac", 4) == 4  # not 301
    assert [half_of(n, i) for i, n in enumerate(["6efa3a07", "7103fa0f", "a8c06b47"], start=1)] == ["odd", "even", "odd"]


def test_max_epochs_caps_an_ensembles_capmix_member_and_changes_its_digest(tmp_path, params):
    """``--max-epochs`` reaches CAPMix inside an ensemble, as it reaches CAPMix beside it."""
    import copy

    from capmix.evaluation.benchmark import _budget_overrides

    p = copy.deepcopy(params)
    p["presets"]["toy"] = {}
    p["ensemble_presets"]["toy"] = {"members": ["capmix", "ocsvm"], "fallback_members": ["capmix", "ocsvm"],
                                    "classic": False, "selection": "mean"}
    spec = DatasetSpec(preset="toy")
    s = _series("a")
    cell = Cell("toy", s.name, "ensemble", 0)
    out = run_cell(cell, s, p, spec, tmp_path, max_epochs=2)
    assert out.extra["capmix.epochs"] <= 2
    assert cell_digest(cell, p, spec, 2) != cell_digest(cell, p, spec, 3)
    # an ensemble without a CAPMix-family member is not changed by the cap
    p["ensemble_presets"]["toy"] = {"members": ["ocsvm"], "fallback_members": ["ocsvm"], "classic": False,
                                    "selection": "mean"}
    assert _budget_overrides("ensemble", p, "toy", 0, 2) == {}
    assert _budget_overrides("cap", p, "toy", 0, 2) == {"max_epochs": 2, "min_epochs": 2}
