"""scripts/check_reproduced.py, the end of CI: which differences after `dvc repro` it accepts."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("check_reproduced", ROOT / "scripts" / "check_reproduced.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)


@pytest.fixture()
def lock() -> dict:
    return yaml.safe_load((ROOT / "dvc.lock").read_text())


def _entry(lock: dict, stage: str, key: str, path: str) -> dict:
    return next(e for e in lock["stages"][stage][key] if e["path"] == path)


def test_same_lock_has_no_differences(lock):
    assert check.lock_differences(lock, copy.deepcopy(lock)) == []


def test_retrained_models_and_metrics_may_differ_in_their_hashes(lock):
    new = copy.deepcopy(lock)
    _entry(new, "train", "outs", "models")["md5"] = "0" * 32 + ".dir"
    _entry(new, "evaluate", "deps", "models")["md5"] = "0" * 32 + ".dir"
    _entry(new, "evaluate", "outs", "metrics/metrics.json")["md5"] = "1" * 32
    assert check.lock_differences(lock, new) == []


def test_other_data_params_or_code_are_differences(lock):
    for stage, key, path in (("generate", "outs", "data/default/series.parquet"),
                             ("train", "deps", "capmix/pipeline.py"),
                             ("validate", "outs", "reports/validation/summary.json")):
        new = copy.deepcopy(lock)
        _entry(new, stage, key, path)["md5"] = "f" * 32
        (problem,) = check.lock_differences(lock, new)
        assert path in problem and "bit-identical" in problem
    new = copy.deepcopy(lock)
    new["stages"]["generate"]["params"]["params.yaml"]["generate"]["seed"] += 1
    assert check.lock_differences(lock, new) == ["dvc.lock generate.params differs"]


def test_numbers_within_the_tolerance_pass_and_beyond_it_fail():
    old = json.dumps({"auc_pr": 0.3382, "nested": {"f1": 0.5}, "n_series": 4})
    near = json.dumps({"auc_pr": 0.33825, "nested": {"f1": 0.5}, "n_series": 4})
    far = json.dumps({"auc_pr": 0.3382, "nested": {"f1": 0.51}, "n_series": 4})
    assert check.number_differences("m.json", old, near, 1e-3) == ([], pytest.approx(5e-5))
    bad, gap = check.number_differences("m.json", old, far, 1e-3)
    assert len(bad) == 1 and "nested/f1" in bad[0] and gap == pytest.approx(0.01)
    assert check.number_differences("m.json", old, json.dumps({"auc_pr": 0.3382}), 1e-3)[0]


def test_csv_rows_and_text_must_match_exactly():
    old = "series,epoch,val_auc\na,1,0.90\na,2,0.91\n"
    assert check.number_differences("t.csv", old, "series,epoch,val_auc\na,1,0.9001\na,2,0.91\n", 1e-3)[0] == []
    # an epoch more (early stopping chose otherwise) or another series name is not a float drift
    assert check.number_differences("t.csv", old, old + "a,3,0.92\n", 1e-3)[0]
    assert check.number_differences("t.csv", old, old.replace("a,2", "b,2"), 1e-3)[0]
