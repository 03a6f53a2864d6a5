"""The paper's two studies as benchmark plans, and the paper's own numbers to compare with.

* ``contamination`` (Fig. 5): CAPMix vs CAP as the training period is polluted with 0.5x
  to 8x unlabelled copies of its real anomalies (``capmix.evaluation.contamination``).
* ``sensitivity`` (Fig. 8): RPA-F1 over a gamma x alpha grid, one univariate and one
  multivariate dataset.

Both produce ordinary benchmark cells (resumable, same evaluation) tagged with a study
point, so ``capmix benchmark --study NAME`` runs them through the same flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from capmix.evaluation.benchmark import BenchmarkConfig, Cell
from capmix.data.canonical import Series

#: Paper Table III (RPA-F1 %, mean over 10 runs) and Table IV for the methods we run.
#: ``mp`` is our matrix-profile stand-in for DAMP; ``random`` is RAS.
PAPER_RPA_F1: dict[str, dict[str, float]] = {
    "aiops": {"ocsvm": 7.02, "iforest": 3.86, "mp": 2.72, "random": 5.46, "deepsvdd": 25.53,
              "cap": 77.44, "cap-gamma": 80.13, "cap-mix": 78.15, "capmix": 80.46},
    "ucr": {"ocsvm": 16.42, "iforest": 4.51, "mp": 39.03, "random": 20.88, "deepsvdd": 48.34,
            "cap": 69.98, "cap-gamma": 69.98, "cap-mix": 68.65, "capmix": 71.89},
}


def paper_numbers() -> dict[str, dict[str, float]]:
    return {k: dict(v) for k, v in PAPER_RPA_F1.items()}


class _Study(BaseModel):
    model_config = ConfigDict(extra="forbid")
    subset: int | None = Field(None, ge=1)
    seeds: list[int] | None = None

    title: str = ""

    def _datasets(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _methods(self) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def restrict(self, cfg: BenchmarkConfig) -> BenchmarkConfig:
        """The benchmark config narrowed to this study's datasets, methods, subset and seeds."""
        missing = [d for d in self._datasets() if d not in cfg.datasets]
        if missing:
            raise ValueError(f"study datasets {missing} are not in params benchmark.datasets; add them there")
        return cfg.model_copy(update={
            "datasets": {d: cfg.datasets[d] for d in self._datasets()},
            "methods": self._methods(),
            "subset": self.subset if self.subset is not None else cfg.subset,
            "seeds": self.seeds if self.seeds is not None else cfg.seeds,
        })


class ContaminationStudy(_Study):
    """params ``studies.contamination``."""

    dataset: str = "aiops"
    methods: list[str] = ["capmix", "cap"]
    factors: list[float] = [0.5, 1.0, 2.0, 4.0, 8.0]
    title: str = "Fig. 5: robustness to training contamination"

    def _datasets(self) -> list[str]:
        return [self.dataset]

    def _methods(self) -> list[str]:
        return self.methods

    def cells(self, series: dict[str, Sequence[Series]], seeds: Sequence[int] = (0,)) -> list[Cell]:
        return [Cell(self.dataset, s.name, m, seed, study=f"x{f:g}", contamination=float(f))
                for f in self.factors for m in self.methods for seed in self.seeds or seeds
                for s in series[self.dataset]]

    def plot(self, rows: Sequence[dict[str, Any]], path: Path) -> Path:
        from capmix.evaluation.plots import plot_study_lines

        return plot_study_lines(rows, path, x_of=lambda st: float(st[1:]), line_key="method",
                                panels=[("window/oracle/rpa_f1_eq13", "RPA-F1 (oracle)"),
                                        ("window/oracle/rpa_precision_micro", "RPA precision (oracle)")],
                                xlabel="contamination (x real anomalies, unlabelled)", title=self.title, logx=True)


class SensitivityStudy(_Study):
    """params ``studies.sensitivity``."""

    datasets: list[str] = ["aiops", "asd"]
    method: str = "capmix"
    gammas: list[float] = [1.05, 1.5, 2.0, 3.0, 5.0]
    alphas: list[float] = [0.05, 0.1, 0.2, 0.4, 0.8]
    title: str = "Fig. 8: sensitivity to gamma and alpha"

    def _datasets(self) -> list[str]:
        return self.datasets

    def _methods(self) -> list[str]:
        return [self.method]

    def cells(self, series: dict[str, Sequence[Series]], seeds: Sequence[int] = (0,)) -> list[Cell]:
        return [Cell(ds, s.name, self.method, seed, study=f"gamma={g:g},alpha={a:g}",
                     overrides=(("alpha", float(a)), ("gamma", float(g))))
                for ds in self.datasets for g in self.gammas for a in self.alphas
                for seed in self.seeds or seeds for s in series[ds]]

    def plot(self, rows: Sequence[dict[str, Any]], path: Path) -> Path:
        from capmix.evaluation.plots import plot_sensitivity

        return plot_sensitivity(rows, path, title=self.title, point_of=parse_point)


STUDIES: dict[str, type[_Study]] = {"contamination": ContaminationStudy, "sensitivity": SensitivityStudy}


def study_config(params: dict[str, Any], name: str) -> _Study:
    """The named study from params ``studies.<name>`` (defaults where params say nothing)."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; choose from {sorted(STUDIES)}")
    section = (params.get("studies") or {}).get(name) or {}
    return STUDIES[name].model_validate(section)


def parse_point(study: str) -> dict[str, float]:
    """``gamma=2,alpha=0.1`` -> {'gamma': 2.0, 'alpha': 0.1}."""
    out = {}
    for part in study.split(","):
        k, _, v = part.partition("=")
        out[k] = float(v)
    return out

