"""Benchmark harness: datasets x methods x seeds, one resumable cell per series.

A *cell* is one (dataset, series, method, seed[, study point]) fit + score + evaluation.
Each finished cell is written atomically as JSON under ``<out_dir>/cells/...``; a re-run
skips cells whose file exists, so an interrupted benchmark resumes where it stopped and
a larger one reuses the cells it shares with a smaller one. The report is computed from
the cell files only: per (dataset, method, seed) the usual aggregate (Eq. 13, micro,
AUCs, UCR protocol), then mean +- std over seeds, written as CSV and Markdown.

Nothing here schedules work: ``run_cells`` takes a ``map`` function. The CLI passes a
plain loop or a Prefect task runner (threads / Dask) through ``flows/benchmark.py``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from capmix.atomic import write_text
from capmix.config import detector_config
from capmix.data.canonical import Series
from capmix.evaluation.evaluate import SeriesResult, aggregate, evaluate_series
from capmix.detectors.registry import build_detector, entry, family, hyperparameters, own_params

#: Columns of the Markdown report: (header, aggregate key). Window granularity is the paper's.
REPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("RPA-F1 oracle", "window/oracle/rpa_f1_eq13"),
    ("RPA-F1 validation", "window/validation/rpa_f1_eq13"),
    ("RPA-F1 oracle (point)", "point/oracle/rpa_f1_eq13"),
    ("RPA-F1 validation (point)", "point/validation/rpa_f1_eq13"),
    ("precision oracle", "window/oracle/rpa_precision_micro"),
    ("AUC-PR", "window/auc_pr_mean"),
    ("UCR accuracy", "ucr/accuracy"),
    ("UCR accuracy, reference rule", "ucr/accuracy_reference_rule"),
    ("UCR RPA-F1, reference rule", "ucr/rpa_f1_mean"),
    ("UCR accuracy, best epoch on test", "ucr_best_epoch/accuracy"),
    ("UCR accuracy, reference rule, best epoch on test", "ucr_best_epoch/accuracy_reference_rule"),
)


class DatasetSpec(BaseModel):
    """One benchmark dataset (params.yaml ``benchmark.datasets.<name>``)."""

    model_config = ConfigDict(extra="forbid")
    preset: str = "default"
    ucr_widen: int | None = Field(None, ge=0, description="set: also score the UCR protocol")
    path: str | None = Field(None, description="canonical Parquet instead of a real-data loader")
    best_epoch_on_test: bool = Field(
        False, description="also score the UCR protocol at the epoch that is best on the test labels "
        "(the reference code's model selection; needs ucr_widen; CAPMix methods only)")


class BenchmarkConfig(BaseModel):
    """params.yaml ``benchmark``."""

    model_config = ConfigDict(extra="forbid")
    datasets: dict[str, DatasetSpec] = {"default": DatasetSpec(path="data/default/series.parquet")}
    methods: list[str] = ["capmix", "cap", "iforest", "random"]
    seeds: list[int] = [0]
    subset: int | None = Field(None, ge=1, description="only the first N series of each dataset")
    half: Literal["all", "odd", "even"] = Field(
        "all", description="odd/even-numbered series only: knobs chosen on the odd half, reported on the even")
    max_epochs: int | None = Field(None, ge=1, description="override train.max_epochs (quick runs)")
    root: str = "../shared/datasets"
    out_dir: str = "reports/benchmark"
    workers: int = Field(1, ge=1, description="parallel series (a Dask LocalCluster when > 1)")
    threads: int = Field(1, ge=1, description="torch threads per worker; 1 + workers = cores is fastest")
    dask_address: str | None = Field(None, description="an existing Dask scheduler, e.g. tcp://host:8786")
    experiment: str = "capmix-benchmark"


@dataclass(frozen=True)
class Cell:
    """One unit of work; ``study`` names a study point (e.g. ``gamma=2.0,alpha=0.1``)."""

    dataset: str
    series: str
    method: str
    seed: int
    study: str = ""
    overrides: tuple[tuple[str, Any], ...] = ()
    contamination: float | None = None

    @property
    def group(self) -> tuple[str, str, str, int]:
        return (self.dataset, self.method, self.study, self.seed)

    def path(self, out_dir: str | Path) -> Path:
        method = self.method + (f"@{self.study}" if self.study else "")
        return Path(out_dir) / "cells" / self.dataset / method / f"seed{self.seed}" / f"{_safe(self.series)}.json"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@dataclass
class CellResult:
    cell: Cell
    result: SeriesResult
    fit_seconds: float
    score_seconds: float
    n_train: int
    n_test: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        c = asdict(self.cell)
        c["overrides"] = dict(self.cell.overrides)
        return json.dumps({"cell": c, "result": self.result.to_dict(), "fit_seconds": self.fit_seconds,
                           "score_seconds": self.score_seconds, "n_train": self.n_train, "n_test": self.n_test,
                           "extra": self.extra}, indent=1, default=float)

    @classmethod
    def from_json(cls, text: str) -> CellResult:
        d = json.loads(text)
        c = d["cell"]
        c["overrides"] = tuple(sorted(c["overrides"].items()))
        return cls(Cell(**c), SeriesResult.from_dict(d["result"]), d["fit_seconds"], d["score_seconds"],
                   d["n_train"], d["n_test"], d.get("extra", {}))


# ----------------------------------------------------------------------------- data
def series_number(name: str, position: int) -> int:
    """A series' number: UCR's leading ``NNN_`` of its name, else its 1-based position (a KPI ID such
    as ``0efb375b-...`` starts with digits too, but they are hex, not a number)."""
    match = re.match(r"(\d+)_", name)
    return int(match.group(1)) if match else position


def half_of(name: str, position: int) -> str:
    return "odd" if series_number(name, position) % 2 else "even"


def load_benchmark_dataset(name: str, spec: DatasetSpec, root: str, subset: int | None,
                           half: str = "all") -> list[Series]:
    """A dataset by loader name (``ucr``, ``aiops``, ...) or from canonical Parquet (``spec.path``);
    ``half`` keeps the odd- or even-numbered series (after ``subset``)."""
    if spec.path is not None:
        from capmix.data.canonical import read_dataset

        series = read_dataset(spec.path)
        series = series[:subset] if subset else series
    else:
        from capmix.data.loaders import load_dataset

        series = load_dataset(name, root, subset=subset)
    if half == "all":
        return series
    return [s for i, s in enumerate(series, start=1) if half_of(s.name, i) == half]


def plan(config: BenchmarkConfig, series: dict[str, Sequence[Series]]) -> list[Cell]:
    """Every cell of datasets x methods x seeds x series, in a stable order."""
    for m in config.methods:
        entry(m)  # an unknown name fails here, naming the valid ones
    return [
        Cell(ds, s.name, m, seed)
        for ds in config.datasets
        for m in config.methods
        for seed in config.seeds
        for s in series[ds]
    ]


def cell_digest(cell: Cell, params: dict[str, Any], spec: DatasetSpec, max_epochs: int | None) -> str:
    """Hash of everything that decides a cell's result: a finished cell is reused only if it matches."""
    import hashlib

    cfg = _cell_config(params, spec, max_epochs)
    what = {"cfg": cfg.model_dump(mode="json"), "method": own_params(cell.method, params, spec.preset),
            "overrides": dict(cell.overrides), "contamination": cell.contamination, "ucr_widen": spec.ucr_widen}
    if _tracks_epochs(cell.method, spec):
        what["best_epoch_on_test"] = True  # only where it changes the result: other cells stay valid
    if "member_params" in _budget_overrides(cell.method, params, spec.preset, cell.seed, max_epochs):
        what["member_epochs"] = max_epochs  # ensemble cells that ran before the cap reached their CAPMix
    blob = json.dumps(what, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _done_digest(path: Path) -> str | None:
    try:
        return json.loads(path.read_text()).get("extra", {}).get("config_digest")
    except (OSError, ValueError):
        return None  # unreadable: recompute


def pending(cells: Iterable[Cell], out_dir: str | Path, digests: dict[Cell, str] | None = None) -> list[Cell]:
    """Cells still to run: no result file yet, or (given ``digests``) one computed under other params."""
    todo = []
    for c in cells:
        path = c.path(out_dir)
        if not path.exists() or (digests is not None and _done_digest(path) != digests[c]):
            todo.append(c)
    return todo


def _tracks_epochs(method: str, spec: DatasetSpec) -> bool:
    """Does this cell record per-epoch test scores for the best-epoch-on-test UCR protocol?"""
    return spec.best_epoch_on_test and spec.ucr_widen is not None and family(method) == "capmix"


def _cell_config(params: dict[str, Any], spec: DatasetSpec, max_epochs: int | None):
    return detector_config(params, preset=spec.preset, **_epoch_budget("capmix", max_epochs))


def _epoch_budget(method: str, max_epochs: int | None) -> dict[str, int]:
    """``--max-epochs`` as overrides of a CAPMix-family detector (others keep their own budget)."""
    if not max_epochs or family(method) != "capmix":
        return {}
    return {"max_epochs": max_epochs, "min_epochs": min(max_epochs, 5)}


def _budget_overrides(method: str, params: dict[str, Any], preset: str, seed: int,
                      max_epochs: int | None) -> dict[str, Any]:
    """``--max-epochs`` for a cell: a CAPMix-family detector directly, an ensemble through its
    CAPMix-family members (otherwise an ensemble's CAPMix would train longer than CAPMix beside it)."""
    if not max_epochs or family(method) != "ensemble":
        return _epoch_budget(method, max_epochs)
    members = hyperparameters(method, params, preset, seed)["member_params"]
    if not any(family(m) == "capmix" for m in members):
        return {}
    return {"member_params": {m: {**p, **_epoch_budget(m, max_epochs)} for m, p in members.items()}}


# ----------------------------------------------------------------------------- one cell
def run_cell(cell: Cell, series: Series, params: dict[str, Any], spec: DatasetSpec,
             out_dir: str | Path, max_epochs: int | None = None) -> CellResult:
    """Fit, score and evaluate one cell; write its JSON atomically and return it."""
    from capmix.evaluation.contamination import contaminate

    overrides = dict(cell.overrides)
    cfg = _cell_config(params, spec, max_epochs)
    x_tr, y_tr = series.train
    x_te, y_te = series.test
    if y_te is None:
        raise ValueError(f"{cell.dataset}/{series.name} has no test labels; benchmarks need labelled test data")
    extra: dict[str, Any] = {"config_digest": cell_digest(cell, params, spec, max_epochs)}
    if cell.contamination is not None:
        rng = np.random.default_rng([cell.seed, 7919])
        x_tr, y_tr, injected = contaminate(x_tr, y_tr, cell.contamination, rng)
        extra["contamination_points"] = int(injected.sum())
    det = build_detector(cell.method, params, preset=spec.preset, seed=cell.seed,
                         **_budget_overrides(cell.method, params, spec.preset, cell.seed, max_epochs), **overrides)
    track = _tracks_epochs(cell.method, spec)
    t0 = time.perf_counter()
    # the per-epoch test scores are for evaluation only: the fitted model does not depend on them
    det.fit(x_tr, y_tr, **({"monitor": x_te} if track else {}))
    t1 = time.perf_counter()
    scores = det.decision_function(x_te)
    t2 = time.perf_counter()
    res = evaluate_series(series.name, scores, y_te, det.threshold_, cfg.window, cfg.stride,
                          ucr_widen=spec.ucr_widen, epoch_window_scores=det.monitor_scores_ if track else None)
    extra.update(det.fit_report())
    out = CellResult(cell, res, t1 - t0, t2 - t1, int(x_tr.shape[0]), int(x_te.shape[0]), extra)
    write_text(cell.path(out_dir), out.to_json())
    return out


def run_cells(cells: Sequence[Cell], work: Callable[[Cell], CellResult],
              map_fn: Callable[[Callable[[Cell], CellResult], Sequence[Cell]], Iterable[CellResult]] | None = None,
              on_done: Callable[[CellResult], None] | None = None) -> list[CellResult]:
    """Run ``work`` over ``cells`` with ``map_fn`` (default: in order, in this process)."""
    results = []
    for r in (map_fn or map)(work, cells):
        results.append(r)
        if on_done is not None:
            on_done(r)
    return results


# ----------------------------------------------------------------------------- report
def load_cells(out_dir: str | Path) -> list[CellResult]:
    root = Path(out_dir) / "cells"
    return [CellResult.from_json(p.read_text()) for p in sorted(root.rglob("*.json"))] if root.exists() else []


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


def summarise(results: Sequence[CellResult], cells: Sequence[Cell] | None = None) -> list[dict[str, Any]]:
    """One row per (dataset, method, study): aggregate per seed, then mean/std over seeds.

    ``cells`` restricts the summary to a plan (other cells in the directory are ignored);
    a group missing some of its series is reported with ``complete = False``.
    """
    wanted = set(cells) if cells is not None else None
    by_group: dict[tuple, list[CellResult]] = defaultdict(list)
    for r in results:
        if wanted is None or r.cell in wanted:
            by_group[r.cell.group].append(r)
    expected: dict[tuple, int] = defaultdict(int)
    for c in cells or [r.cell for r in results]:
        expected[c.group] += 1
    per_seed: dict[tuple, list[tuple[int, dict[str, float], list[CellResult]]]] = defaultdict(list)
    for (ds, m, study, seed), rs in sorted(by_group.items()):
        rs = sorted(rs, key=lambda r: r.cell.series)
        per_seed[(ds, m, study)].append((seed, aggregate([r.result for r in rs]), rs))
    rows = []
    for (ds, m, study), items in _with_halves(per_seed).items():
        row: dict[str, Any] = {"dataset": ds, "method": m, "study": study,
                               "seeds": len(items), "n_series": int(items[0][1]["n_series"])}
        keys = sorted({k for _, agg, _ in items for k in agg if k != "n_series"})
        for k in keys:
            row[f"{k}/mean"], row[f"{k}/std"] = _mean_std([agg.get(k, float("nan")) for _, agg, _ in items])
        fit = [sum(r.fit_seconds for r in rs) for _, _, rs in items]
        score = [sum(r.score_seconds for r in rs) for _, _, rs in items]
        row["fit_seconds_total"] = float(np.mean(fit))
        row["score_seconds_total"] = float(np.mean(score))
        row["seconds_per_series"] = float(np.mean(fit) + np.mean(score)) / max(row["n_series"], 1)
        base = ds.split(" (")[0]  # a half row is as complete as its whole dataset
        row["complete"] = all(len(rs) == expected[(base, m, study, seed)] for seed, _, rs in per_seed[(base, m, study)])
        rows.append(row)
    return rows


def _with_halves(per_seed: dict[tuple, list]) -> dict[tuple, list]:
    """Add ``<dataset> (odd)`` / ``(even)`` groups where the UCR rule applies and both halves are present:
    knobs chosen by looking at UCR are chosen on the odd half, so the even half is reported apart."""
    out = dict(per_seed)
    for (ds, m, study), items in per_seed.items():
        if not any(r.result.ucr_hit is not None for _, _, rs in items for r in rs):
            continue
        for half in ("odd", "even"):
            part = []
            for seed, _, rs in items:
                sel = [r for i, r in enumerate(rs, start=1) if half_of(r.cell.series, i) == half]
                if sel:
                    part.append((seed, aggregate([r.result for r in sel]), sel))
            if part and len(part[0][2]) < len(items[0][2]):
                out[(f"{ds} ({half})", m, study)] = part
    return out


def _fmt(mean: float, std: float, seeds: int) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if seeds > 1 else "")


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = REPORT_COLUMNS,
                   paper: dict[str, dict[str, float]] | None = None) -> str:
    """A Markdown table (values in %, mean ± std over seeds); empty columns are dropped.

    ``paper``: ``{dataset: {method: rpa_f1_percent}}`` adds the paper's number next to ours.
    """
    cols = [(h, k) for h, k in columns if any(math.isfinite(r.get(f"{k}/mean", float("nan"))) for r in rows)]
    if paper and not any(r["method"] in paper.get(r["dataset"], {}) for r in rows):
        paper = None  # no row has a paper number: no empty column
    head = ["dataset", "method", "series", "seeds", *(h for h, _ in cols)]
    if paper:
        head.append("paper RPA-F1")
    head.append("s/series")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["method"] + (f" ({r['study']})" if r.get("study") else "")
        cells = [r["dataset"], name, str(r["n_series"]) + ("" if r.get("complete", True) else " (partial)"),
                 str(r["seeds"])]
        cells += [_fmt(r.get(f"{k}/mean", float("nan")), r.get(f"{k}/std", float("nan")), r["seeds"]) for _, k in cols]
        if paper:
            v = paper.get(r["dataset"], {}).get(r["method"])
            cells.append("–" if v is None else f"{v:.2f}")
        cells.append(f"{r['seconds_per_series']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(rows: Sequence[dict[str, Any]], out_dir: str | Path, name: str = "results",
                 paper: dict[str, dict[str, float]] | None = None, title: str = "capmix benchmark") -> tuple[Path, Path]:
    """``<name>.csv`` (every aggregate, mean and std) and ``<name>.md`` (the headline columns)."""
    import csv
    import io

    out = Path(out_dir)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    csv_path = write_text(out / f"{name}.csv", buf.getvalue())
    md = (f"# {title}\n\nRPA-F1 in %, Eq. 13 event-weighted, window granularity unless marked; "
          "`oracle` = the paper's best-threshold protocol (uses test labels), `validation` = the "
          "deployable threshold from training data only.\n\n" + markdown_table(rows, paper=paper))
    md_path = write_text(out / f"{name}.md", md)
    return csv_path, md_path
