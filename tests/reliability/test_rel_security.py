"""Security and disk faults: no arbitrary unpickling, no shell, no credentials, loopback servers,
a full disk or an unwritable directory leaving the previous output untouched."""

from __future__ import annotations

import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from relhelpers import leftovers, signal as sig

from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.modelfiles import ModelFileError
from capmix.modelfiles import sha256_file

ROOT = Path(__file__).resolve().parents[2]


class _Evil:
    """Unpickling this runs a shell command (what a hostile model or data file would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_model_weights_with_code_are_not_executed(tmp_path, model_dir):
    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    marker = tmp_path / "pwned"
    torch.save({"w": _Evil(marker)}, bad / "weights.pt")
    sums = {n: sha256_file(bad / n) for n in ("config.json", "state.json", "weights.pt")}
    (bad / "checksums.json").write_text(__import__("json").dumps(sums))  # an attacker can fix the checksums too
    with pytest.raises(ModelFileError, match="cannot be loaded"):
        CAPMixDetector.load(bad)
    assert not marker.exists()


def test_training_checkpoint_with_code_is_ignored_not_executed(tmp_path):
    from relhelpers import TINY

    marker, ckpt = tmp_path / "pwned", tmp_path / "c.pt"
    torch.save({"fingerprint": _Evil(marker)}, ckpt)
    with pytest.warns(RuntimeWarning, match="unreadable checkpoint"):
        det = CAPMixDetector(**{**TINY, "max_epochs": 1}).fit(sig(1500), checkpoint=ckpt)
    assert det.resumed_from_epoch_ is None and not marker.exists()


def test_esa_pickle_with_code_is_refused(tmp_path):
    from capmix.data.loaders import UnsafePickleError, safe_read_pickle

    marker, path = tmp_path / "pwned", tmp_path / "channel_1.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("channel_1", pickle.dumps(_Evil(marker)))
    with pytest.raises(UnsafePickleError, match=r"calls posix.system .*NOT loaded.*Fix: convert"):
        safe_read_pickle(path)
    assert not marker.exists()


def test_no_shell_anywhere_and_paths_are_data(tmp_path, model_dir):
    for path in [*ROOT.joinpath("capmix").glob("*.py"), *ROOT.joinpath("flows").glob("*.py")]:
        text = path.read_text()
        assert not re.search(r"shell\s*=\s*True|os\.system\(|os\.popen\(|(?<![.\w])eval\(|(?<![.\w])exec\(", text), path
    # a file name full of shell syntax is just a file name
    name = tmp_path / "x; touch pwned $(touch pwned2).csv"
    pd.DataFrame(sig(300), columns=["ch0", "ch1"]).to_csv(name, index=False)
    done = subprocess.run([sys.executable, "-m", "capmix.cli", "score", "--model", str(model_dir), "--input",
                           str(name), "--out", str(tmp_path / "s.csv")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_params_yaml_holds_no_credentials_and_logs_are_redacted():
    from capmix.config import load_params
    from capmix.redaction import redact
    from flows.provenance import clean_tags

    load_params(ROOT / "params.yaml")  # raises ParamsError on any credential
    assert redact("postgresql://capmix:s3cret@db/mlflow") == "postgresql://capmix:***@db/mlflow"
    assert redact("https://ghp_token@github.com/x") == "https://***@github.com/x"  # a token as the user
    tags = clean_tags({"db_password": "x", "uri": "http://u:p@host", "train.gamma": 3.0})
    assert tags == {"uri": "http://u:***@host", "train.gamma": "3.0"}


def test_servers_bind_to_loopback_by_default():
    from click.testing import CliRunner
    from mlflow.cli import cli as mlflow_cli
    from prefect.settings import get_current_settings

    assert str(get_current_settings().server.api.host) == "127.0.0.1"
    assert get_current_settings().runner.server.host in ("localhost", "127.0.0.1")
    help_text = CliRunner().invoke(mlflow_cli, ["server", "--help"]).output
    assert re.search(r"--host.*?default.*?127\.0\.0\.1", " ".join(help_text.split()))
    for path in [*ROOT.joinpath("capmix").glob("*.py"), *ROOT.joinpath("flows").glob("*.py"), ROOT / "Makefile",
                 ROOT / "prefect.yaml"]:
        assert "0.0.0.0" not in path.read_text(), path


# ============================================================================================ disk
def _score(model_dir: Path, src: Path, out: Path, fsize: int | None = None) -> subprocess.CompletedProcess:
    def limit():  # a full disk, as the kernel reports it to the writer: EFBIG past the limit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "capmix.cli", "score", "--model", str(model_dir), "--input",
                           str(src), "--out", str(out), "--chunk-rows", "1000"], capture_output=True, text=True,
                          timeout=120, preexec_fn=limit if fsize else None)


def test_disk_full_keeps_the_previous_output(tmp_path, model_dir):
    src, out = tmp_path / "in.parquet", tmp_path / "out" / "scores.csv"
    pd.DataFrame(sig(20_000), columns=["ch0", "ch1"]).to_parquet(src, index=False)
    out.parent.mkdir()
    out.write_text("previous scores\n")
    done = _score(model_dir, src, out, fsize=50_000)  # the new CSV needs ~800 kB
    assert done.returncode == 2, done.stderr
    msg = " ".join(done.stderr.split())
    assert "cannot write" in msg and "File too large" in msg and "Fix: free disk space" in msg
    assert out.read_text() == "previous scores\n" and leftovers(out.parent) == []


def test_unwritable_output_directory_is_a_clear_error(tmp_path, model_dir):
    src = tmp_path / "in.csv"
    pd.DataFrame(sig(300), columns=["ch0", "ch1"]).to_csv(src, index=False)
    (tmp_path / "file").write_text("not a directory")
    done = _score(model_dir, src, tmp_path / "file" / "scores.csv")
    assert done.returncode == 2
    msg = " ".join(done.stderr.split())
    assert "cannot write" in msg and "writable output directory" in msg
    assert "Not a directory" in msg or "File exists" in msg  # mkdir of the parent reports the latter
    assert np.isfinite(pd.read_csv(src).to_numpy()).all() and (tmp_path / "file").read_text() == "not a directory"
