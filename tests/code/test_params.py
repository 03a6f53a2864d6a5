"""Typed params (capmix/params.py): strict sections, one-line errors, one tuned-params rule, and the DVC
stages' params lists checked against what each stage's command may read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from capmix.config import ParamsError
from capmix.params import Params, UndeclaredParamError, load_params, parse_params, stage_params

ROOT = Path(__file__).resolve().parents[2]


def _raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def _bad_params(tmp_path: Path) -> Path:
    """params.yaml with `dataset:` misspelt as `datset:`."""
    text = (ROOT / "params.yaml").read_text().replace("\ndataset:\n", "\ndatset:\n")
    assert "\ndatset:\n" in text
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


def test_repo_params_load_typed():
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert p.register.model_name == "capmix-default"  # params.yaml's value, not a default
    assert p.detector_config().window == p.train.window
    assert p.detector_config(preset="aiops").window == p.presets["aiops"].window
    assert p.coad.lr == _raw()["coad"]["lr"]
    assert p.model_dump()["coad_presets"]["smd"] == _raw()["coad_presets"]["smd"]  # partial: only the keys set
    assert p.model_dump()["baselines"] == _raw()["baselines"]


def test_unknown_section_is_one_line_with_the_closest_name():
    raw = _raw()
    raw["datset"] = raw.pop("dataset")
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    assert str(exc.value) == "params.yaml: unknown section 'datset'; did you mean 'dataset'?"


@pytest.mark.parametrize("section, key, fix", [
    ("train", "lrr", "lr"),
    ("register", "model_nam", "model_name"),
    ("flow", "task_runer", "task_runner"),
    ("coad", "windows_per_epok", "windows_per_epoch"),
    ("benchmark", "workrs", "workers"),
])
def test_unknown_key_names_the_section_and_the_closest_key(section, key, fix):
    raw = _raw()
    raw[section][key] = 1
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    assert str(exc.value) == f"params.yaml {section}: unknown key {key!r}; did you mean {fix!r}?"


def test_unknown_key_in_a_nested_section():
    raw = _raw()
    raw["presets"]["aiops"]["alpah"] = 0.1
    raw["coad_presets"]["smd"]["max_windw"] = 64
    with pytest.raises(ParamsError, match=r"^params.yaml presets.aiops: unknown key 'alpah'; did you mean 'alpha'\?$"):
        parse_params(raw)
    del raw["presets"]["aiops"]["alpah"]
    with pytest.raises(ParamsError,
                       match=r"^params.yaml coad_presets.smd: unknown key 'max_windw'; did you mean 'max_window'\?$"):
        parse_params(raw)


def test_a_key_in_a_section_that_takes_none_says_so():
    raw = _raw()
    raw["baselines"]["zscore"] = {"window": 32}
    with pytest.raises(ParamsError) as exc:
        parse_params(raw)
    assert str(exc.value) == ("params.yaml baselines.zscore: unknown key 'window'; "
                              "this section takes no keys: leave it {}")


def test_bad_value_and_credentials_are_refused(tmp_path):
    raw = _raw()
    raw["register"]["margin"] = "lots"
    with pytest.raises(ParamsError, match="register.margin"):
        parse_params(raw)
    raw = _raw()
    raw["mlflow"]["tracking_uri"] = "postgresql://u:secret@host/db"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ParamsError, match="credentials"):
        load_params(path)


def test_defaults_live_in_the_models():
    p = Params()
    assert p.register.model_name == "capmix-default"
    assert p.detector == "capmix" and p.flow.task_runner == "sequential"
    assert p.detector_config().window == 64  # DetectorConfig's default: no preset, no train keys


def test_tuned_params_apply_only_when_tuning_is_enabled(tmp_path):
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump({"best_params": {"gamma": 2.5, "alpha": 0.3}}))
    raw = _raw()
    raw["tune"].update(best_params=str(best), enabled=False)
    off = parse_params(raw)
    assert off.tuned_overrides() == {}  # a file left from an earlier run does not change training
    assert off.tuned_overrides(enabled=True) == {"gamma": 2.5, "alpha": 0.3}  # flow --tune
    raw["tune"]["enabled"] = True
    assert parse_params(raw).tuned_overrides() == {"gamma": 2.5, "alpha": 0.3}
    raw["detector"] = "coad"
    assert parse_params(raw).tuned_overrides() == {}  # the search is over CAPMix's gamma/alpha only
    from capmix.cli import tuned_params

    assert tuned_params(off) == off.tuned_overrides()  # the CLI uses the same rule


# ------------------------------------------------------------------------------------ DVC stages
def test_dvc_stages_list_exactly_what_their_commands_read():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    p = load_params(ROOT / "params.yaml")
    for name, stage in dvc["stages"].items():
        assert stage["cmd"].split()[:2] == ["capmix", name]
        assert sorted(stage.get("params", [])) == sorted(stage_params(name, p)), name


def test_stage_params_follow_the_detector_and_preset():
    raw = _raw()
    raw["detector"] = "coad"
    raw["train"]["preset"] = "smd"
    reads = stage_params("train", parse_params(raw))
    assert {"coad", "coad_presets.smd", "presets.smd"} <= set(reads)
    assert not any(k.startswith("tune") for k in reads)
    capmix = stage_params("train", load_params(ROOT / "params.yaml"))
    assert not any(k.startswith("coad") for k in capmix)


def test_a_stage_reading_an_undeclared_param_fails():
    p = load_params(ROOT / "params.yaml").scoped("validate")
    assert p.capmix_window() == p.train.window  # declared: train.window, train.preset, presets.<preset>
    with pytest.raises(UndeclaredParamError, match="'train.lr'"):
        p.train.lr
    with pytest.raises(UndeclaredParamError, match="'register'"):
        p.register
    with pytest.raises(UndeclaredParamError, match="'coad'"):
        p.model_dump().get("coad")  # the dict handed to the detector registry is guarded too
    with pytest.raises(UndeclaredParamError, match="'train'"):
        p.detector_config()  # the whole train section is not declared for validate


@pytest.mark.parametrize("detector", ["capmix", "coad"])
def test_the_train_stage_builds_its_detector_within_its_declaration(detector):
    from capmix.detectors.registry import pipeline_detector

    raw = _raw()
    raw["detector"] = detector
    p = parse_params(raw).scoped("train")
    det = pipeline_detector(p, tuned=p.tuned_overrides())  # what `capmix train` does
    assert det is not None
    p.dataset.path, p.dataset.subset  # noqa: B018 - load_series reads these


def test_tune_and_evaluate_stages_read_within_their_declaration():
    full = load_params(ROOT / "params.yaml")
    tune = full.scoped("tune")
    assert tune.detector_config() == full.detector_config()
    assert tune.tune.search_config() == full.tune.search_config()
    ev = full.scoped("evaluate")
    assert ev.evaluate == full.evaluate
    with pytest.raises(UndeclaredParamError):
        ev.train


# ------------------------------------------------------------------------------- entry points
def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "OMP_NUM_THREADS": "1"}


def _one_line_exit_2(proc: subprocess.CompletedProcess, cwd: Path) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "Warning" not in ln and "return meta(" not in ln]
    assert proc.returncode == 2, proc.stderr
    assert lines == ["error: bad.yaml: unknown section 'datset'; did you mean 'dataset'?"], proc.stderr
    assert sorted(x.name for x in cwd.iterdir()) == ["bad.yaml"]  # no models/, runs/, plots/, mlflow.db


def test_capmix_train_with_a_misspelt_section_exits_2_and_writes_nothing(tmp_path):
    _bad_params(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "from flows.cli import app; app()", "train", "--params", "bad.yaml"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    _one_line_exit_2(proc, tmp_path)


def test_flow_with_a_misspelt_section_exits_2_and_writes_nothing(tmp_path):
    _bad_params(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "flows.train", "--params", "bad.yaml"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    _one_line_exit_2(proc, tmp_path)


def test_params_yaml_survives_dvc_exp_set_param(tmp_path):
    """``dvc exp run -S key=value`` rewrites params.yaml through DVC's own override code (Hydra, then
    its YAML round trip): params.yaml is kept in the form that writes, so the only lines that change
    are the ones set (no lists re-laid, no comments or nulls lost), however often it is applied."""
    from dvc.utils.hydra import apply_overrides

    before = (ROOT / "params.yaml").read_text()
    copy = tmp_path / "params.yaml"
    copy.write_text(before)
    apply_overrides(str(copy), ["train.alpha=0.4"])
    apply_overrides(str(copy), ["train.gamma=2"])
    after = copy.read_text()
    assert len(before.splitlines()) == len(after.splitlines())
    changed = [b.split("#")[0].strip() for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == ["gamma: 2", "alpha: 0.4"], changed
    p = parse_params(yaml.safe_load(after))
    assert (p.train.alpha, p.train.gamma) == (0.4, 2.0)
