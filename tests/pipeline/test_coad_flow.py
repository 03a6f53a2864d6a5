"""The training flow end to end with other detectors than CAPMix (params.yaml ``detector``), on the default
data, tiny epochs.

``detector: coad`` must train one CoAD model per series (no augment stage), evaluate, register the bundle
in MLflow and promote it; the registered bundle must load as CoAD detectors and score like them. A second
run (``detector: capmix``, ``shift.enabled``) must log the anomaly-shift numbers to MLflow. A third
(``detector: ensemble``) must register an ensemble that the scoring flow and MLflow's pyfunc serve.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "coad-flowtest"


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory, harness, isolated_mlflow):
    base = tmp_path_factory.mktemp("coadflow")
    root = base / "work"
    root.mkdir()
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["detector"] = "coad"
    p["generate"].update(n_series=2, length=3000, n_channels=2, max_anomaly_length=60)
    p["generate"]["out"] = p["dataset"]["path"] = "data/default/series.parquet"
    p["dataset"].update(name="default", subset=None)
    p["train"].update(window=32, stride=8, device="cpu")
    p["coad"].update(epochs=2, windows_per_epoch=256, hidden=8, layers=1, max_window=64)
    p["tune"].update(enabled=True, best_params=str(root / "tuning" / "best_params.yaml"),
                     storage=f"sqlite:///{root}/optuna.db")  # must be skipped with a warning for CoAD
    p["validate"]["out"] = str(root / "reports" / "validation")
    uri = f"sqlite:///{base}/mlflow.db"
    p["mlflow"].update(tracking_uri=uri, experiment="coad-flowtest")
    p["register"].update(model_name=MODEL_NAME, margin=0.0, min_metric=0.0)
    p["flow"].update(task_runner="sequential")
    p.setdefault("shift", {})["enabled"] = False
    params_path = root / "params.yaml"
    params_path.write_text(yaml.safe_dump(p, sort_keys=False))

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    MlflowClient(uri, uri).create_experiment("coad-flowtest", artifact_location=(base / "artifacts").as_uri())
    old = Path.cwd()
    os.chdir(root)
    try:
        from flows.train import training_flow

        summary = training_flow(params_path=str(params_path))
        # CAPMix with the anomaly-shift task, another model name (no CoAD/CAPMix gate mixing)
        p.update(detector="capmix", shift={"enabled": True, "max_series": 1, "plots": 0})
        p["train"].update(kernel=4, features=8, max_epochs=2, min_epochs=1, min_patch=6, batch_size=128)
        p["tune"]["enabled"] = False
        p["register"]["model_name"] = MODEL_NAME + "-capmix"
        p["flow"]["out_dir"] = "runs/capmix"
        capmix_params = root / "params-capmix.yaml"
        capmix_params.write_text(yaml.safe_dump(p, sort_keys=False))
        capmix_summary = training_flow(params_path=str(capmix_params))
        # the ensemble: CAPMix (tiny, as above) + the classic candidates, its own model name
        p.update(detector="ensemble", shift={"enabled": False})
        p["register"]["model_name"] = MODEL_NAME + "-ensemble"
        p["flow"]["out_dir"] = "runs/ensemble"
        ensemble_params = root / "params-ensemble.yaml"
        ensemble_params.write_text(yaml.safe_dump(p, sort_keys=False))
        ensemble_summary = training_flow(params_path=str(ensemble_params))
        from flows.score import scoring_flow

        scored = scoring_flow(str(root / "data/default/series.parquet"), str(root / "out/ens.parquet"),
                              params_path=str(ensemble_params))
        yield root, summary, MlflowClient(uri, uri), capmix_summary, (ensemble_summary, scored)
    finally:
        os.chdir(old)


def test_coad_flow_trains_evaluates_and_registers(flow_run):
    from capmix.detectors.coad import CoADDetector
    from capmix.data.canonical import read_dataset
    from flows.bundle import load_bundle

    root, summary, client, _, _ = flow_run
    assert all(np.isfinite(v) for v in summary["metrics"].values())
    run = client.get_run(summary["run_id"])
    assert run.data.tags["detector"] == "coad"
    assert "augment.n_injected" not in run.data.metrics  # no CAPMix augment stage ran
    assert run.data.params["coad.epochs"] == "2"
    assert not (root / "tuning" / "best_params.yaml").exists()  # tuning is CAPMix-only: skipped
    # registered and promoted (the first version becomes champion)
    assert summary["version"] == "1" and summary["promotion"] == "promoted"
    assert client.get_registered_model(MODEL_NAME).aliases.get("champion") in (1, "1")
    # the flow's models are CoAD detectors, saved with their kind
    models = root / "runs" / "latest" / "models"
    series = read_dataset(root / "data/default/series.parquet")
    for s in series:
        assert json.loads((models / s.name / "config.json").read_text())["detector"] == "coad"
    # the registered bundle loads as CoAD and scores exactly like the saved detectors
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL_NAME}@champion"))
    bundle_dir = next(p for p in local.rglob("config.json") if p.parent.name == series[0].name).parent.parent
    dets = load_bundle(bundle_dir)
    assert all(isinstance(d, CoADDetector) for d in dets.values())
    x = series[0].test[0]
    assert np.array_equal(dets[series[0].name].decision_function(x),
                          CoADDetector.load(models / series[0].name).decision_function(x))


def test_capmix_flow_logs_the_anomaly_shift(flow_run):
    root, _, client, summary, _ = flow_run
    run = client.get_run(summary["run_id"])
    assert run.data.tags["detector"] == "capmix"
    m = run.data.metrics
    for key in ("shift.energy.cap_real", "shift.energy.capmix_real", "shift.energy.cap_normal",
                "shift.energy.capmix_normal", "shift.mmd.cap_real", "shift.mmd.capmix_real", "shift.eq10_energy_holds"):
        assert key in m and np.isfinite(m[key]), key
    arts = {a.path for a in client.list_artifacts(summary["run_id"], "shift")}
    assert "shift/shift.json" in arts
    rows = json.loads((root / "runs" / "capmix" / "shift" / "shift.json").read_text())
    assert len(rows) == 1 and rows[0]["energy/cap_real"] == pytest.approx(m["shift.energy.cap_real"])


def test_ensemble_flow_registers_a_model_that_scores(flow_run):
    import pandas as pd

    from capmix.data.canonical import read_dataset
    from capmix.detectors.ensemble import EnsembleDetector

    root, _, client, _, (summary, scored) = flow_run
    run = client.get_run(summary["run_id"])
    assert run.data.tags["detector"] == "ensemble"
    assert summary["version"] == "1" and summary["promotion"] == "promoted"
    assert all(np.isfinite(v) for v in summary["metrics"].values())
    models = root / "runs" / "ensemble" / "models"
    series = read_dataset(root / "data/default/series.parquet")
    det = EnsembleDetector.load(models / series[0].name)
    assert [m.kind for m in det.members_] == ["capmix", "ocsvm", "iforest"]  # params.yaml ensemble.members
    # the scoring flow served the champion: one finite score per row, the same as the saved detector
    out = pd.read_parquet(root / "out/ens.parquet")
    assert scored["model_uri"].endswith(f"{MODEL_NAME}-ensemble@champion") and len(out) == scored["n_points"]
    first = out[out["series"] == series[0].name]["score"].to_numpy()
    np.testing.assert_allclose(first, det.decision_function(np.concatenate([series[0].train[0], series[0].test[0]])),
                               rtol=1e-5)
    # MLflow's pyfunc (what `mlflow models serve` runs) scores a frame with the same numbers
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}-ensemble@champion")
    frame = pd.read_parquet(root / "data/default/series.parquet")
    served = model.predict(frame[["series", *series[0].channels]])
    np.testing.assert_allclose(served["score"].to_numpy(), out["score"].to_numpy(), rtol=1e-5)
