"""Fixtures of the reliability tests: a tiny trained model and a small raw table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from relhelpers import CHANNELS, TINY, signal

from capmix.data.canonical import to_frame
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.data.synthetic import GeneratorConfig, generate


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    det = CAPMixDetector(**TINY).fit(signal(3000))
    det.channels_ = CHANNELS
    return det.save(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture(scope="session")
def raw_frame() -> pd.DataFrame:
    """A valid raw table for ingestion: 2 series x 400 points, 2 channels, labelled."""
    cfg = GeneratorConfig(n_series=2, length=400, n_channels=2, anomalies_per_series=1, min_anomaly_length=8,
                          max_anomaly_length=20, seed=3)
    return to_frame(generate(cfg))
