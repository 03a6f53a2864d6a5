"""``capmix benchmark`` end to end: Prefect flow, resume, report, MLflow parent and child runs."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.testing.utilities import prefect_test_harness
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def params_file(tmp_path):
    from capmix.data.synthetic import GeneratorConfig, generate_dataset

    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    # the default data is a DVC output (not in a fresh clone): generate a small copy of it
    gen = {k: v for k, v in p["generate"].items() if k != "out"}
    data = generate_dataset(GeneratorConfig.model_validate({**gen, "n_series": 2, "length": 3000}),
                            tmp_path / "series.parquet")
    p["mlflow"] = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "experiment": "capmix-test"}
    p["benchmark"].update(
        datasets={"default": {"preset": "default", "path": str(data)}},
        methods=["random", "iforest"], seeds=[0, 1], subset=2, out_dir=str(tmp_path / "bench"),
        experiment="capmix-bench-test",
    )
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(p))
    return path


def test_benchmark_flow_runs_resumes_and_logs_parent_and_child_runs(harness, params_file, tmp_path):
    from flows.benchmark import run

    out = run(str(params_file))
    assert out["cells"] == 2 * 2 * 2 and out["ran"] == 8
    report = Path(out["report"]).read_text()
    assert "| default | iforest | 2 | 2 |" in report and "| default | random | 2 | 2 |" in report
    assert Path(out["csv"]).exists()

    again = run(str(params_file))  # every cell is on disk: nothing is recomputed, same report
    assert again["ran"] == 0
    assert Path(again["report"]).read_text() == report

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient()
    exp = client.get_experiment_by_name("capmix-bench-test")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{out['mlflow_run_id']}'")
    assert sorted(r.data.tags["method"] for r in runs) == ["iforest", "random"]
    assert all("window.oracle.rpa_f1_eq13.mean" in r.data.metrics for r in runs)
    parent = client.get_run(out["mlflow_run_id"])
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"results.md", "results.csv"}


def test_benchmark_cli_rejects_unknown_methods_and_datasets(params_file):
    runner = CliRunner()
    res = runner.invoke(app, ["benchmark", "--methods", "capmix,nope", "--params", str(params_file)])
    assert res.exit_code == 2 and "unknown detector 'nope'" in res.output
    res = runner.invoke(app, ["benchmark", "--dataset", "swat", "--params", str(params_file)])
    assert res.exit_code == 2 and "not in params benchmark.datasets" in res.output


def test_benchmark_flow_scores_the_ucr_protocol_and_draws_its_figure(harness, params_file, tmp_path):
    """A dataset with ``ucr_widen`` gets the UCR columns, the best-epoch-on-test columns for CAPMix
    methods, and a ``<name>_<dataset>_ucr.png`` bar chart next to the report."""
    from flows.benchmark import run

    p = yaml.safe_load(params_file.read_text())
    data = p["benchmark"]["datasets"]["default"]["path"]
    out = run(str(params_file), overrides={
        "datasets": {"toy": {"path": data, "ucr_widen": 100, "best_epoch_on_test": True}},
        "methods": ["cap", "random"], "seeds": [0], "subset": 1, "max_epochs": 2}, log_to_mlflow=False, name="u")
    report = Path(out["report"]).read_text()
    assert "UCR accuracy, best epoch on test" in report
    cap = next(r for r in out["rows"] if r["method"] == "cap")
    rnd = next(r for r in out["rows"] if r["method"] == "random")
    assert 0.0 <= cap["ucr_best_epoch/accuracy/mean"] <= 1.0 and 0.0 <= cap["ucr/accuracy/mean"] <= 1.0
    assert "ucr_best_epoch/accuracy/mean" not in rnd  # no epochs: no such column
    assert (tmp_path / "bench" / "u_toy_ucr.png").stat().st_size > 1000
