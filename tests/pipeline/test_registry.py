"""MLflow registry for CAPMix bundles (flows/bundle.py, flows/promotion.py) against a throw-away sqlite store.

Tiny real detectors (2 series, 2 channels, 2 epochs) are trained once per module; each test
works on its own registered-model name so the tests do not depend on each other's aliases.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from capmix.detectors.capmix.detector import CAPMixDetector
from flows.bundle import CAPMixBundleModel, log_bundle
from flows.promotion import (
    CHALLENGER,
    CHAMPION,
    HISTORY_TAG,
    champion_history,
    load_champion,
    promote,
    promote_if_better,
    rollback,
)

SERIES = ("sine-a", "sine-b")
CHANNELS = ("ch0", "ch1")
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"
DVC_LOCK = """\
schema: '2.0'
stages:
  generate:
    cmd: capmix generate
    outs:
    - path: data/default/series.parquet
      hash: md5
      md5: 1111aaaa2222bbbb3333cccc4444dddd
      size: 100
  train:
    cmd: capmix train
    deps:
    - path: data/default/series.parquet
      hash: md5
      md5: 1111aaaa2222bbbb3333cccc4444dddd
    outs:
    - path: models
      hash: md5
      md5: 5555eeee6666ffff7777aaaa8888bbbb.dir
      size: 2000
      nfiles: 9
"""
PARAMS = {"train": {"window": 32, "stride": 8, "mixup_layers": [0, 3], "dims": None}, "dataset": {"name": "toy"}}


def _signal(n: int, phase: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n)
    clean = np.c_[np.sin(t / 8 + phase), np.cos(t / 13 + phase)]
    return clean + 0.1 * rng.standard_normal((n, 2))


def _frame(values: dict[str, np.ndarray], split: str = "test") -> pd.DataFrame:
    """Canonical long frame (series, timestamp, split, label, channels...)."""
    parts = []
    for name, x in values.items():
        n = len(x)
        parts.append(
            pd.DataFrame(
                {
                    "series": name,
                    "timestamp": np.arange(n, dtype=np.int64),
                    "split": split,
                    "label": pd.array(np.zeros(n, dtype=np.int8), dtype="Int8"),
                    CHANNELS[0]: x[:, 0],
                    CHANNELS[1]: x[:, 1],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """sqlite tracking + registry store and a file artifact root, all under a tmp dir."""
    tmp = tmp_path_factory.mktemp("mlflow")
    old_tracking, old_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    old_sys_path = list(sys.path)  # loading a pyfunc prepends its code/ dir to sys.path
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CAPMIX_GIT_COMMIT", FAKE_COMMIT)  # no git call from the tests
        uri = f"sqlite:///{tmp}/mlflow.db"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        exp = mlflow.create_experiment("capmix-registry-test", artifact_location=(tmp / "artifacts").as_uri())
        mlflow.set_experiment(experiment_id=exp)
        repo = tmp / "repo"
        repo.mkdir()
        (repo / "dvc.lock").write_text(DVC_LOCK)
        yield {"tmp": tmp, "repo": repo, "client": MlflowClient(uri, uri), "experiment_id": exp}
    mlflow.set_tracking_uri(old_tracking)
    mlflow.set_registry_uri(old_registry)
    sys.path[:] = old_sys_path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """Two tiny trained detectors saved as a bundle directory + held-out test frame."""
    rng = np.random.default_rng(0)
    models = tmp_path_factory.mktemp("bundle") / "models"
    detectors = {}
    for i, name in enumerate(SERIES):
        det = CAPMixDetector(
            window=32, stride=8, kernel=4, features=8, max_epochs=2, min_epochs=1, min_patch=6, batch_size=64
        ).fit(_signal(600, i, rng))
        det.save(models / name)
        detectors[name] = det
    (models / "summary.json").write_text(json.dumps({"series": [{"series": s} for s in SERIES]}))
    test = _frame({name: _signal(160 + 40 * i, i, rng) for i, name in enumerate(SERIES)})
    test.loc[test.index[50:55], "ch0"] += 4.0  # an obvious spike so some points alarm
    return {"dir": models, "detectors": detectors, "test": test}


@pytest.fixture(scope="module")
def registered(store, bundle):
    """Version 1 of 'capmix-bundle' logged once and shared by the read-only tests."""
    mv = log_bundle(
        bundle["dir"],
        bundle["test"],
        "capmix-bundle",
        tags={"dataset": "toy", "aws_secret_access_key": "AKIA-NOPE", "store": "https://user:hunter2@example.org/x"},
        metrics={"validation_rpa_f1": 0.5},
        params=PARAMS,
        repo_dir=store["repo"],
    )
    return mv


def _expected(bundle, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    scores = np.empty(len(frame))
    alarms = np.empty(len(frame), dtype=bool)
    for name, det in bundle["detectors"].items():
        rows = np.flatnonzero(frame["series"].to_numpy() == name)
        s = det.decision_function(frame.iloc[rows][list(CHANNELS)].to_numpy())
        scores[rows], alarms[rows] = s, s > det.threshold_
    return scores, alarms


def test_log_and_register_gives_version_1_with_provenance_tags(registered, store):
    assert str(registered.version) == "1"  # MLflow 3.17 returns an int here
    tags = store["client"].get_model_version("capmix-bundle", "1").tags
    assert tags["git.commit"] == FAKE_COMMIT
    assert tags["dvc.models"] == "5555eeee6666ffff7777aaaa8888bbbb.dir"
    assert tags["dvc.data/default/series.parquet"] == "1111aaaa2222bbbb3333cccc4444dddd"
    assert tags["train.window"] == "32" and tags["train.mixup_layers"] == "[0, 3]"
    assert not any(k.startswith("dataset.") for k in tags), "only train.* params are recorded"
    assert tags["metrics.validation_rpa_f1"] == "0.5"
    assert tags["dataset"] == "toy" and tags["bundle.n_series"] == "2"
    # never credentials
    assert "aws_secret_access_key" not in tags
    assert "hunter2" not in json.dumps(tags)


def test_pyfunc_scores_equal_the_detectors_own(registered, bundle):
    model = mlflow.pyfunc.load_model("models:/capmix-bundle/1")
    test = bundle["test"]
    # rows of the two series interleaved in blocks: each series is still scored in its own order
    order = np.r_[np.arange(160, 260), np.arange(0, 160), np.arange(260, len(test))]
    shuffled = test.iloc[order]
    out = model.predict(shuffled)
    assert list(out.columns) == ["series", "score", "alarm"]
    assert len(out) == len(shuffled) and (out.index == shuffled.index).all()
    scores, alarms = _expected(bundle, test)
    out = out.loc[test.index]
    np.testing.assert_allclose(out["score"].to_numpy(), scores, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out["alarm"].to_numpy(), alarms)
    assert (out["series"].to_numpy() == test["series"].to_numpy()).all()


def test_serving_payloads_json_and_csv(registered, bundle):
    """What ``mlflow models serve`` does with a request body: plain columns only, extras ignored."""
    from mlflow.pyfunc.scoring_server import invocations

    model = mlflow.pyfunc.load_model("models:/capmix-bundle/1")
    schema = model.metadata.get_input_schema()
    test = bundle["test"].astype({"label": "int64", "split": "object"})
    scores, alarms = _expected(bundle, bundle["test"])
    bodies = {
        "application/json": json.dumps({"dataframe_split": json.loads(test.to_json(orient="split", index=False))}),
        "text/csv": test.to_csv(index=False),
    }
    for content_type, body in bodies.items():
        resp = invocations(body, content_type, model, schema)
        assert resp.status == 200, resp.response
        out = pd.DataFrame(json.loads(resp.response)["predictions"])
        np.testing.assert_allclose(out["score"].to_numpy(), scores, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(out["alarm"].to_numpy(), alarms)
    # a request the model cannot score is a 400 whose body's message says why (not a generic error)
    bad = test.assign(series="nope").to_csv(index=False)
    with pytest.raises(MlflowException) as err:
        invocations(bad, "text/csv", model, schema)
    assert err.value.get_http_status_code() == 400
    assert "unknown series ['nope']" in json.loads(err.value.serialize_as_json())["message"]
    one = test["series"].iloc[0]
    short = test[test["series"] == one].iloc[:10].to_csv(index=False)
    with pytest.raises(MlflowException) as err:
        invocations(short, "text/csv", model, schema)
    assert err.value.get_http_status_code() == 400
    assert "fewer than one window" in json.loads(err.value.serialize_as_json())["message"]


def test_logged_requirements_are_pinned_cpu_and_code_is_shipped(registered, tmp_path):
    local = Path(mlflow.artifacts.download_artifacts("models:/capmix-bundle/1", dst_path=str(tmp_path)))
    reqs = [line.strip() for line in (local / "requirements.txt").read_text().splitlines() if line.strip()]
    assert f"torch=={importlib.metadata.version('torch')}" in reqs  # e.g. 2.13.0+cpu, not a CUDA 2.13.0
    assert not any(r.lower().startswith(("nvidia-", "nvidia_", "triton")) for r in reqs), reqs
    for pkg in ("numpy", "pandas", "scikit-learn", "pydantic", "numba", "pyarrow", "mlflow"):
        assert f"{pkg}=={importlib.metadata.version(pkg)}" in reqs
    assert all("==" in r for r in reqs if not r.startswith("-")), "every requirement is pinned"
    assert (local / "code" / "capmix" / "detectors" / "capmix" / "detector.py").is_file()
    assert {p.name for p in (local / "code" / "flows").iterdir()} == {"__init__.py", "bundle.py", "provenance.py"}
    assert not list((local / "code").rglob("__pycache__"))
    for name in SERIES:
        assert (local / "artifacts" / "models" / name / "weights.pt").is_file()


def test_unknown_series_and_wrong_channels_are_clear_errors(registered, bundle, store):
    model = mlflow.pyfunc.load_model("models:/capmix-bundle/1")
    bad = bundle["test"].assign(series="no-such-series")
    with pytest.raises((ValueError, MlflowException), match="unknown series"):
        model.predict(bad)
    with pytest.raises(MlflowException, match="ch1"):
        model.predict(bundle["test"].drop(columns="ch1"))
    with pytest.raises(MlflowException, match="missing inputs \\['series'\\]"):
        model.predict(bundle["test"].drop(columns="series"))
    direct = CAPMixBundleModel.from_dir(bundle["dir"])
    with pytest.raises(ValueError, match="no 'series' column"):
        direct.predict(None, bundle["test"].drop(columns="series"))
    with pytest.raises(ValueError, match="channels"):
        direct.predict(None, bundle["test"].assign(ch2=1.0))
    with pytest.raises(ValueError, match="sine-a.*fewer than one window"):
        direct.predict(None, bundle["test"].groupby("series").head(10))
    with pytest.raises(ValueError, match="channels"):
        log_bundle(bundle["dir"], bundle["test"].drop(columns="ch1"), None, {}, None, repo_dir=store["repo"])


def test_single_series_bundle_needs_no_series_column(store, bundle, tmp_path):
    one = tmp_path / "models"
    one.mkdir()
    bundle["detectors"]["sine-b"].save(one / "sine-b")
    test = bundle["test"][bundle["test"]["series"] == "sine-b"]
    # logged into an existing run that another thread (e.g. the Prefect flow) keeps open
    run = store["client"].create_run(store["experiment_id"])
    mv = log_bundle(
        one, test.drop(columns="series"), "capmix-one", {}, None, repo_dir=store["repo"], run_id=run.info.run_id
    )
    assert mv.run_id == run.info.run_id
    after = store["client"].get_run(run.info.run_id)
    assert after.info.status == "RUNNING" and after.data.tags["bundle.n_series"] == "1"
    assert mlflow.active_run() is None
    out = mlflow.pyfunc.load_model(f"models:/capmix-one/{mv.version}").predict(test.drop(columns="series"))
    expected = bundle["detectors"]["sine-b"].decision_function(test[list(CHANNELS)].to_numpy())
    np.testing.assert_allclose(out["score"].to_numpy(), expected, rtol=1e-6, atol=1e-7)
    assert (out["series"] == "sine-b").all()


def test_promotion_gate_and_rollback(store, bundle):
    client, name = store["client"], "capmix-gate"
    versions = [
        log_bundle(bundle["dir"], bundle["test"], name, {"candidate": str(i)}, None, repo_dir=store["repo"]).version
        for i in range(3)
    ]
    assert [str(v) for v in versions] == ["1", "2", "3"]
    # what each version scores on the held-out data (the test's stand-in for a real evaluation)
    value_of = {"1": 0.80, "2": 0.805, "3": 0.90}
    calls: list[str] = []

    def champion_value(uri: str) -> float:
        calls.append(uri)
        model = mlflow.pyfunc.load_model(uri)  # the champion must load and score the same data
        assert len(model.predict(bundle["test"])) == len(bundle["test"])
        return value_of[uri.rsplit("/", 1)[1]]

    # 1: no champion yet -> promoted
    d1 = promote_if_better(client, name, "1", "rpa_f1", 0.01, value_of["1"], champion_value)
    assert d1.promoted and d1.champion_version is None and calls == []
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"

    # 2: 0.805 < 0.80 + 0.01 -> refused; champion unchanged, tags say why
    d2 = promote_if_better(client, name, "2", "rpa_f1", 0.01, value_of["2"], champion_value)
    assert not d2.promoted and d2.decision == "refused" and d2.champion_value == pytest.approx(0.80)
    assert calls == [f"models:/{name}/1"]
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    assert str(client.get_model_version_by_alias(name, CHALLENGER).version) == "2"
    tags = client.get_model_version(name, "2").tags
    assert tags["promotion.decision"] == "refused" and tags["promotion.compared_to"] == "1"
    assert all(number in tags["promotion.reason"] for number in ("0.805", "0.8 ", "0.81"))

    # 3: 0.90 >= 0.81 -> promoted
    d3 = promote_if_better(client, name, "3", "rpa_f1", 0.01, value_of["3"], champion_value)
    assert d3.promoted and d3.champion_version == "1"
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "3"
    assert client.get_model_version(name, "3").tags["promotion.decision"] == "promoted"
    history = champion_history(client, name)
    assert [(h["version"], h["from"]) for h in history] == [("1", None), ("3", "1")]
    assert all({"version", "from", "at", "reason"} <= set(h) for h in history)
    assert json.loads(client.get_registered_model(name).tags[HISTORY_TAG]) == history

    # rollback -> previous champion (1), which still loads and scores like the detectors
    entry = rollback(client, name)
    assert entry["version"] == "1" and entry["from"] == "3"
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "1"
    scores, _ = _expected(bundle, bundle["test"])
    champion_scores = load_champion(name).predict(bundle["test"])["score"].to_numpy()
    np.testing.assert_allclose(champion_scores, scores, rtol=1e-6, atol=1e-7)
    assert len(champion_history(client, name)) == 3
    with pytest.raises(ValueError, match="no previous champion"):
        rollback(client, name)

    # manual promote + rollback
    promote(client, name, "2", reason="hotfix for a data issue")
    assert str(client.get_model_version_by_alias(name, CHAMPION).version) == "2"
    assert rollback(client, name)["version"] == "1"
    assert [h["version"] for h in champion_history(client, name)] == ["1", "3", "1", "2", "1"]


def test_rollback_without_champion_is_a_clear_error(store, bundle):
    client = store["client"]
    client.create_registered_model("capmix-empty")
    with pytest.raises(ValueError, match="no champion"):
        rollback(client, "capmix-empty")


def test_gate_measures_the_champion_itself_on_the_held_out_data(store, bundle, tmp_path):
    from capmix.data.canonical import from_frame, read_dataset, write_dataset
    from capmix.pipeline import EvaluateConfig, evaluate_saved, summarise
    from flows.promotion import HeldOut

    rng = np.random.default_rng(1)
    train = _frame({name: _signal(300, i, rng) for i, name in enumerate(SERIES)}, split="train")
    test = bundle["test"].copy()
    test["timestamp"] += 300  # after the training period
    test["label"] = pd.array(np.zeros(len(test), dtype=np.int8), dtype="Int8")
    for name in SERIES:  # one obvious, labelled anomaly per series
        rows = test.index[test["series"] == name][60:66]
        test.loc[rows, "ch0"] += 4.0
        test.loc[rows, "label"] = 1
    data = write_dataset(from_frame(pd.concat([train, test], ignore_index=True)), tmp_path / "held_out.parquet")
    ecfg = EvaluateConfig()
    expected = summarise([evaluate_saved(s, bundle["dir"], ecfg)[0] for s in read_dataset(data)], ecfg)["auc_pr"]
    assert np.isfinite(expected)

    client, name = store["client"], "capmix-held-out"
    v1, v2 = (log_bundle(bundle["dir"], bundle["test"], name, {}, None, repo_dir=store["repo"]).version for _ in range(2))
    held_out = HeldOut(str(data), ecfg)
    assert promote_if_better(client, name, v1, "auc_pr", 0.0, expected, held_out).promoted
    # the same models score the same on the same data: a challenger below that is refused, one level with it
    # is refused unless ties are allowed
    d2 = promote_if_better(client, name, v2, "auc_pr", 0.0, expected - 0.01, held_out)
    assert d2.decision == "refused" and d2.champion_value == pytest.approx(expected)
    d3 = promote_if_better(client, name, v2, "auc_pr", 0.0, expected, held_out)
    assert d3.decision == "refused" and "promote_ties" in d3.reason  # a tie does not churn the alias
    d4 = promote_if_better(client, name, v2, "auc_pr", 0.0, expected, held_out, allow_ties=True)
    assert d4.promoted and d4.champion_version == str(v1)


def test_a_bundle_of_baseline_detectors_logs_loads_and_scores(store, tmp_path):
    """Any registry detector can be the pipeline's (params `detector`), so any can be bundled; the
    logged model is code (models-from-code), not a pickled object."""
    from capmix import build_detector
    from flows.bundle import models_fingerprint

    rng = np.random.default_rng(3)
    models = tmp_path / "models"
    for name in SERIES:
        build_detector("iforest", window=32, stride=8).fit(rng.normal(size=(400, 2))).save(models / name)
    test = _frame({name: rng.normal(size=(100, 2)) for name in SERIES})
    mv = log_bundle(models, test, "capmix-iforest-bundle", repo_dir=store["repo"])
    model = mlflow.pyfunc.load_model(f"models:/capmix-iforest-bundle/{mv.version}")
    assert model.metadata.flavors["python_function"].get("model_code_path")  # no CloudPickle
    out = model.predict(test)
    assert len(out) == len(test) and np.isfinite(out["score"]).all()
    # the fingerprint follows the saved models: the same folder hashes the same, one more model changes it
    before = models_fingerprint(models)
    assert models_fingerprint(models) == before
    build_detector("iforest", window=32, stride=8, seed=1).fit(rng.normal(size=(400, 2))).save(models / "other")
    assert models_fingerprint(models) != before
