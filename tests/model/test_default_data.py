"""Model behaviour on the embedded default data: CAPMix must clearly beat the random scorer."""

import numpy as np
import pytest

from capmix.detectors.baselines import RandomScorer
from capmix.config import detector_config, load_params
from capmix.detectors.capmix.detector import CAPMixDetector
from capmix.evaluation.evaluate import aggregate, evaluate_series
from capmix.data.synthetic import GeneratorConfig, generate

pytestmark = pytest.mark.slow

#: The margin (in Eq. 13 oracle RPA-F1 and AUC-ROC) CAPMix must keep over random scores.
MARGIN_F1 = 0.10
MARGIN_AUC = 0.10


@pytest.fixture(scope="module")
def dataset():
    p = load_params("params.yaml")
    section = p.generate.generator().model_dump()
    return p, generate(GeneratorConfig.model_validate(section))  # exactly the main job's data


def _score(series, make, cfg):
    res = []
    for s in series:
        det = make().fit(*s.train)
        res.append(evaluate_series(s.name, det.decision_function(s.test[0]), s.test[1],
                                   getattr(det, "threshold_", 0.5), cfg.window, cfg.stride))
    return aggregate(res)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_capmix_beats_random_scorer(dataset, seed):
    p, series = dataset
    cfg = detector_config(p, seed=seed)
    ours = _score(series, lambda: CAPMixDetector(cfg), cfg)
    rand = _score(series, lambda: RandomScorer(seed=seed), cfg)
    print(f"seed {seed}: capmix oracle RPA-F1 {ours['window/oracle/rpa_f1_eq13']:.3f} "
          f"AUC-ROC {ours['window/auc_roc_mean']:.3f}; random {rand['window/oracle/rpa_f1_eq13']:.3f} "
          f"{rand['window/auc_roc_mean']:.3f}")
    assert ours["window/oracle/rpa_f1_eq13"] >= rand["window/oracle/rpa_f1_eq13"] + MARGIN_F1
    assert ours["window/auc_roc_mean"] >= rand["window/auc_roc_mean"] + MARGIN_AUC
