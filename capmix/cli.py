"""The ``capmix`` command line: the DVC stages and day-to-day use call these commands."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from capmix.atomic import write_error
from capmix.telemetry import switch_off

switch_off()  # DVC stages and `python -m capmix.cli` run through here; the flows' entry points switch it off too

# markdown: the docstrings' ``code`` renders as code and paragraphs re-wrap to the terminal
app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode="markdown")
console = Console(stderr=True)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="params.yaml to read")]


def _fail(message: str) -> None:
    # the message is printed verbatim: paths and values in it are data, not rich markup
    console.print("[bold red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Errors a user can cause become one message and exit code 2 (no traceback).

    ``FileNotFoundError`` is an ``OSError`` but names a missing input, so it keeps its own message;
    other ``OSError``s are output problems (disk full, read-only directory).
    """
    try:
        yield
    except (ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(write_error(exc))


def _params(path: Path) -> Any:
    """params.yaml, typed (capmix/params.py); a bad file is one line and exit code 2, before anything is written."""
    from capmix.params import load_params

    try:
        return load_params(path)
    except (FileNotFoundError, ValueError) as exc:
        _fail(str(exc))
        raise


def _stage_params(path: Path, stage: str) -> Any:
    """The params a DVC stage's command may read: any read that dvc.yaml does not list for it raises."""
    return _params(path).scoped(stage)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def generate(params: ParamsOpt = Path("params.yaml")) -> None:
    """Write the embedded default dataset (seeded synthetic series) from params ``generate``."""
    from capmix.data.synthetic import generate_dataset

    gen = _stage_params(params, "generate").generate
    out = Path(gen.out)
    try:
        generate_dataset(gen.generator(), out)
    except OSError as exc:
        _fail(write_error(exc))
    console.print(f"wrote {out}")


def tuned_params(p: Any) -> dict[str, Any]:
    """gamma/alpha[/mixup_layers] from the tuning file: the one rule, ``Params.tuned_overrides``."""
    return p.tuned_overrides()


def train_all(p: Any, models: Path, preset: str | None = None) -> list[dict[str, Any]]:
    """Train one model per series with a progress bar; returns per-series summaries."""
    from capmix.detectors.registry import pipeline_detector
    from capmix.pipeline import load_series, train_series

    # params `detector` picks the detector; tuned gamma/alpha apply to the CAPMix family only
    det = pipeline_detector(p, preset=preset, tuned=tuned_params(p))
    epochs = det.n_epochs
    series = load_series(p.dataset)
    summaries, history = [], []
    with _progress() as prog:
        outer = prog.add_task("series", total=len(series), info="")
        inner = prog.add_task("epochs", total=epochs, info="")
        for s in series:
            prog.reset(inner, total=epochs, info=s.name)

            def on_epoch(log, _name=s.name):
                prog.update(inner, completed=log.epoch, info=f"{_name} val_auc={log.val_auc:.3f}")
                # wall-clock columns stay out: this DVC plot is versioned and must reproduce bit for bit
                history.append({"series": _name, **{k: v for k, v in log.__dict__.items() if "seconds" not in k}})

            trained = train_series(s, det.clone(), models, on_epoch=on_epoch)
            summaries.append(trained.summary())
            prog.advance(outer)
    from capmix.atomic import write_json
    from capmix.pipeline import write_csv

    write_json({"series": summaries, "detector": det.kind, "config": det.get_params()}, models / "summary.json")
    write_csv(history, Path("plots") / "training.csv")
    return summaries


@app.command()
def train(
    params: ParamsOpt = Path("params.yaml"),
    models: Annotated[Path, typer.Option(help="output directory, one model per series")] = Path("models"),
    preset: Annotated[str | None, typer.Option(help="override train.preset")] = None,
) -> None:
    """Train one detector (params ``detector``: capmix | coad) per series of the configured dataset."""
    p = _stage_params(params, "train")
    with _user_errors():
        train_all(p, models, preset)


def evaluate_all(p: Any, models: Path, out: Path, plots: Path) -> dict[str, float]:
    """Evaluate every saved model on its series' test period; write metrics and plots."""
    from capmix.pipeline import evaluate_saved, load_series, write_evaluation

    ecfg = p.evaluate
    series = load_series(p.dataset)
    results, scores, thresholds = [], [], []
    with _progress() as prog:
        task = prog.add_task("evaluate", total=len(series), info="")
        for i, s in enumerate(series):
            res, thr, sc = evaluate_saved(s, models, ecfg, plots if i < ecfg.max_plots else None)
            results.append(res)
            scores.append(sc)
            thresholds.append(thr)
            prog.advance(task)
    return write_evaluation(results, ecfg, out, scores, [s.test[1] for s in series], thresholds, plots)


@app.command()
def evaluate(
    params: ParamsOpt = Path("params.yaml"),
    models: Annotated[Path, typer.Option()] = Path("models"),
    out: Annotated[Path, typer.Option(help="metrics directory")] = Path("metrics"),
    plots: Annotated[Path, typer.Option(help="plots directory")] = Path("plots"),
) -> None:
    """RPA/PA/PW F1 under both threshold protocols, AUCs, per series and aggregated."""
    p = _stage_params(params, "evaluate")
    with _user_errors():
        metrics = evaluate_all(p, models, out, plots)
    print_headline(metrics)


def print_headline(metrics: dict[str, float]) -> None:
    table = Table(title="capmix results (Eq. 13 event-weighted RPA-F1, window granularity)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("validation_rpa_f1", "oracle_rpa_f1", "auc_pr", "auc_roc", "ucr_accuracy"):
        if key in metrics:
            table.add_row(key, f"{metrics[key]:.4f}")
    Console().print(table)


@app.command()
def score(
    model: Annotated[Path, typer.Option(help="saved model directory")],
    input: Annotated[Path, typer.Option(help="CSV or Parquet of channel columns (same as training)")],
    out: Annotated[Path, typer.Option(help="output: [timestamp,] score, alarm per point (.csv or .parquet)")],
    chunk_rows: Annotated[int, typer.Option(min=1, help="rows read and scored at a time (bounds memory)")] = 100_000,
    allow_irregular: Annotated[bool, typer.Option("--allow-irregular",
                                                  help="accept timestamps with uneven intervals")] = False,
    series: Annotated[str | None, typer.Option(help="score only this series of a file that holds several")] = None,
) -> None:
    """Score new data with a saved model, streaming the file in chunks: one score and one 0/1 alarm per point.

    One series per file (a ``series`` column, if any, must hold one name); columns ``series``,
    ``timestamp``, ``split`` and ``label`` are not channels. The output appears only when every row
    was scored.
    """
    from capmix.detectors.registry import load_detector
    from capmix.stream import score_file

    with _user_errors():
        det = load_detector(model)
        summary = score_file(det, input, out, chunk_rows=chunk_rows, allow_irregular=allow_irregular,
                             series=series)
    console.print(f"wrote {out}: {summary['n_alarms']} alarms in {summary['n_points']} points")


@app.command()
def ingest(
    input: Annotated[Path, typer.Option(help="raw CSV or Parquet: series?, timestamp?, split, label?, channels")],
    out: Annotated[Path | None, typer.Option(help="canonical Parquet to write (default: params dataset.path)")] = None,
    params: ParamsOpt = Path("params.yaml"),
    unlabelled: Annotated[bool, typer.Option("--unlabelled", help="the data has no labels (no evaluation possible)")] = False,
) -> None:
    """Check a raw table with the Great Expectations suite and write it in the canonical Parquet form.

    Nothing is written unless every expectation holds (the validation report says what failed).
    """
    from capmix.data.canonical import RESERVED_COLUMNS, canonical_columns, from_frame, read_table, write_dataset
    from capmix.data.validation import validate_frame

    p = _params(params)
    target = out or Path(p.dataset.path)
    with _user_errors():
        frame = canonical_columns(read_table(input), default_series=input.stem)
        n_channels = len([c for c in frame.columns if c not in RESERVED_COLUMNS])
        cfg = p.validate.config(kind="univariate" if n_channels == 1 else "multivariate",
                                window=p.capmix_window(), require_labels=not unlabelled, mode="train")
        report = validate_frame(frame, cfg, p.validate.out)
        report.raise_for_failures()
        series = from_frame(report.frame)
        write_dataset(series, target, metadata={"source": str(input)})
    console.print(f"ingested {len(series)} series from {input} -> {target}")


@app.command()
def validate(
    params: ParamsOpt = Path("params.yaml"),
    mode: Annotated[str, typer.Option(help="train (train+test splits) or score (test split)")] = "train",
    channels: Annotated[str | None, typer.Option(help="comma-separated expected channels (scoring)")] = None,
) -> None:
    """Great Expectations suite on the dataset; non-zero exit listing every failed expectation."""
    from capmix.data.canonical import read_dataset, to_frame
    from capmix.data.validation import validate_frame

    p = _stage_params(params, "validate")
    with _user_errors():
        series = read_dataset(p.dataset.path)
        cfg = p.validate.config(
            kind="univariate" if series[0].n_channels == 1 else "multivariate",
            channels=channels.split(",") if channels else None,
            window=p.capmix_window(),
            require_labels=mode == "train",
            mode=mode,
        )
        report = validate_frame(to_frame(series), cfg, p.validate.out)
        report.raise_for_failures()
    console.print(f"validation passed: {report.json_path} (Data Docs: {report.data_docs_path})")


@app.command()
def tune(params: ParamsOpt = Path("params.yaml")) -> None:
    """Optuna gamma/alpha search on the training period; writes tune.best_params (DVC-tracked)."""
    from capmix.atomic import write_json
    from capmix.pipeline import load_series
    from capmix.tuning import plot_study, tune as run_tune, write_best_params

    from capmix.detectors.registry import family

    p = _stage_params(params, "tune")
    t = p.tune
    out = Path(t.best_params)
    name = p.detector
    if t.enabled and family(name) != "capmix":
        _fail(f"tuning searches CAPMix's gamma/alpha only; with `detector: {name}` set its own section of "
              "params.yaml by hand, or set tune.enabled: false")
    if not t.enabled:
        # keep the stage's output well-defined: no tuned parameters are applied
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("# tuning disabled (params.yaml tune.enabled: false)\nbest_params: {}\n")
        console.print(f"tuning disabled; wrote {out}")
        return
    with _user_errors():
        series = load_series(p.dataset)
        result = run_tune(series, p.detector_config(), t.search_config())
        write_best_params(result, out)
        plot_study(result, out.with_name("study.png"))
        write_json({"best_value": result.best_value, **result.best_params}, out.with_name("best_metrics.json"))
    console.print(f"best {result.best_params} (val AUC {result.best_value:.4f}) -> {out}")


@app.command()
def run(params: ParamsOpt = Path("params.yaml")) -> None:
    """The main job without orchestration: generate (if needed) -> train -> evaluate."""
    t0 = time.perf_counter()
    p = _params(params)
    data_path = Path(p.dataset.path)
    if not data_path.exists():
        generate(params)
    with _user_errors():
        train_all(p, Path("models"))
        metrics = evaluate_all(p, Path("models"), Path("metrics"), Path("plots"))
    print_headline(metrics)
    console.print(f"done in {time.perf_counter() - t0:.1f}s")


def main() -> None:  # pragma: no cover
    sys.exit(app())


if __name__ == "__main__":  # python -m capmix.cli (the console script adds the registry commands)
    main()
