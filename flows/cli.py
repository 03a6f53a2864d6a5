"""The full ``capmix`` command: the library's commands plus the registry ones (MLflow lives in flows/).

``capmix promote`` / ``capmix rollback`` move the production alias by hand; capmix/ itself stays free
of orchestration and tracking imports, so these commands are added here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from capmix.cli import ParamsOpt, _fail, _params, app, console

def _client(p: dict[str, Any]):
    import os

    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", p.get("mlflow", {}).get("tracking_uri", "sqlite:///mlflow.db")))
    return mlflow.MlflowClient()


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="model version to make champion")],
    reason: Annotated[str, typer.Option(help="why (kept in the registry's history)")] = "manual promotion",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Move the production alias (champion) to VERSION by hand; the history is kept in tags."""
    from flows.registry import promote as do_promote

    p = _params(params)
    name = p.get("register", {}).get("model_name", "capmix")
    try:
        do_promote(_client(p), name, version, reason)
    except Exception as exc:  # registry errors are user-facing here
        _fail(f"could not promote {name} v{version}: {exc}")
    console.print(f"{name}@champion -> v{version}")


@app.command()
def rollback(
    reason: Annotated[str, typer.Option(help="why (kept in the registry's history)")] = "manual rollback",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Move champion back to the previous champion."""
    from flows.registry import rollback as do_rollback

    p = _params(params)
    name = p.get("register", {}).get("model_name", "capmix")
    try:
        entry = do_rollback(_client(p), name, reason)
    except Exception as exc:
        _fail(f"could not roll back {name}: {exc}")
    console.print(f"{name}@champion -> v{entry.get('version')}")


__all__ = ["app"]
