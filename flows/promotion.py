"""The registry's champion: the promotion gate, promotion by hand, rollback, and their history.

Aliases, never stages (deprecated in MLflow 3):

* ``challenger``: the latest candidate that went through :func:`promote_if_better`;
* ``champion``: what serving loads (``models:/<name>@champion``, see :func:`load_champion`).

The gate compares the challenger's metric with the champion's on the SAME held-out data; it
evaluates the champion itself (:func:`champion_metric`). Every champion move (gate, manual
:func:`promote`, :func:`rollback`) is appended to the JSON list in the registered-model tag
``champion.history`` (entries ``{version, from, at, reason, action}``), so the registry itself says
who was champion when and why; :func:`rollback` walks that history.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import mlflow
import mlflow.pyfunc
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from prefect import get_run_logger, task
from prefect.exceptions import MissingContextError

from capmix.pipeline import EvaluateConfig
from flows.bundle import download_bundle
from flows.provenance import clean_tags, utc_now

__all__ = [
    "CHAMPION",
    "CHALLENGER",
    "HISTORY_TAG",
    "HeldOut",
    "PromotionDecision",
    "champion_history",
    "champion_metric",
    "gate",
    "load_champion",
    "promote",
    "promote_if_better",
    "rollback",
]

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion.history"
HISTORY_MAX_ENTRIES = 500  # registered-model tag values are capped at 100k characters


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of :func:`promote_if_better` (also written to the version's ``promotion.*`` tags)."""

    name: str
    version: str
    promoted: bool
    decision: str  # "promoted" | "refused" | "already-champion"
    reason: str
    metric_key: str
    new_value: float
    margin: float
    champion_version: str | None  # the champion compared against (None: there was none)
    champion_value: float | None


@dataclass(frozen=True)
class HeldOut:
    """The held-out data (a canonical dataset file) and evaluation settings the challenger was
    measured with: the gate measures the champion with exactly these."""

    data_path: str
    evaluate: EvaluateConfig


#: What the gate compares against: the held-out data, or any ``models:/<name>/<version>`` -> metric.
ChampionScorer = HeldOut | Callable[[str], float]


# =============================================================================== the champion's metric
def _logger() -> Any:
    try:
        return get_run_logger()
    except MissingContextError:  # called outside a flow run
        return logging.getLogger(__name__)


def champion_metric(uri: str, held_out: HeldOut, metric: str) -> float:
    """``metric`` of the bundle at ``uri`` on ``held_out``, computed as for the challenger. A bundle
    that cannot even load scores nan (it must not block its replacement; the gate records why)."""
    from capmix.data.canonical import read_dataset
    from capmix.modelfiles import ModelFileError
    from capmix.pipeline import evaluate_saved, summarise

    models_dir, _ = download_bundle(uri)
    series = read_dataset(held_out.data_path)
    try:
        results = [evaluate_saved(s, models_dir, held_out.evaluate)[0] for s in series]
    except ModelFileError as exc:
        _logger().warning("champion %s cannot be evaluated (%s); it scores nan in the gate", uri, exc)
        return float("nan")
    return float(summarise(results, held_out.evaluate)[metric])


def _champion_value(scorer: ChampionScorer, uri: str, metric: str) -> float:
    return champion_metric(uri, scorer, metric) if isinstance(scorer, HeldOut) else float(scorer(uri))


# =============================================================================== history
def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Version an alias points at now, or None when the alias is not set."""
    aliases = client.get_registered_model(name).aliases or {}
    v = aliases.get(alias)
    return str(v) if v is not None else None


def champion_history(client: MlflowClient, name: str) -> list[dict[str, Any]]:
    """The champion moves recorded in the registered-model tag ``champion.history`` (oldest first)."""
    raw = (client.get_registered_model(name).tags or {}).get(HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"registered model {name!r} has a corrupt {HISTORY_TAG} tag: {exc}") from exc
    return list(history) if isinstance(history, list) else []


def _move_champion(
    client: MlflowClient, name: str, version: str, previous: str | None, reason: str, action: str
) -> dict[str, Any]:
    client.set_registered_model_alias(name, CHAMPION, version)
    entry = {"version": version, "from": previous, "at": utc_now(), "reason": reason, "action": action}
    history = (champion_history(client, name) + [entry])[-HISTORY_MAX_ENTRIES:]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return entry


def _set_version_tags(client: MlflowClient, name: str, version: str, tags: Mapping[str, Any]) -> None:
    for k, v in clean_tags(tags).items():
        client.set_model_version_tag(name, version, k, v)


# =============================================================================== the gate
def _fmt(x: float | None) -> str:
    return "nan" if x is None or math.isnan(x) else f"{x:.6g}"


def _compare(metric_key: str, new_value: float, margin: float, champ: str, champ_value: float,
             allow_ties: bool = False) -> tuple[bool, str, str]:
    """(promoted, decision, reason) of a challenger scoring ``new_value`` against champion ``champ``.

    The challenger must be above ``champ_value + margin``; level with it only when ``allow_ties``
    (a retrained model that merely equals the champion would otherwise churn the alias every run)."""
    bar = champ_value + margin
    if math.isnan(new_value):
        return False, "refused", f"{metric_key}=nan for the challenger; champion v{champ} has {_fmt(champ_value)}"
    if math.isnan(champ_value):
        return True, "promoted", f"{metric_key}={_fmt(new_value)}; champion v{champ} scores nan on the same data"
    versus = f"champion v{champ} {_fmt(champ_value)} + margin {_fmt(margin)} = {_fmt(bar)}"
    if new_value > bar or (allow_ties and new_value == bar):
        return True, "promoted", f"{metric_key}={_fmt(new_value)} {'>' if new_value > bar else '='} {versus}"
    if new_value == bar:
        return False, "refused", (f"{metric_key}={_fmt(new_value)} ties {versus} "
                                  "(a tie is not promoted; set register.promote_ties: true to allow it)")
    return False, "refused", f"{metric_key}={_fmt(new_value)} < {versus}"


def promote_if_better(
    client: MlflowClient,
    name: str,
    version: str | int,
    metric_key: str,
    margin: float,
    new_value: float,
    held_out: ChampionScorer,
    *,
    allow_ties: bool = False,
    max_attempts: int = 3,
) -> PromotionDecision:
    """Gate: ``version`` gets ``challenger``; it becomes ``champion`` when there is no champion or
    ``new_value > champion_value + margin`` (``>=`` with ``allow_ties``; a NaN ``new_value`` is
    always refused).

    ``champion_value`` is the current champion's ``metric_key`` on the SAME held-out data that gave
    ``new_value``: computed here from ``held_out`` (:func:`champion_metric`), or, when ``held_out`` is
    a callable, what it returns for the champion's pinned URI ``models:/<name>/<version>``. The
    champion alias is read when the gate runs and read again just before moving it: if another
    process moved the champion meanwhile, the comparison is redone against the new champion.
    """
    version, new_value = str(version), float(new_value)
    client.get_model_version(name, version)  # fail early on an unknown version
    client.set_registered_model_alias(name, CHALLENGER, version)

    for _ in range(max_attempts):
        champ = _alias_version(client, name, CHAMPION)
        champ_value: float | None = None
        if champ is None:
            promoted, decision, reason = True, "promoted", f"no champion yet; {metric_key}={_fmt(new_value)}"
        elif champ == version:
            promoted, decision, reason = False, "already-champion", f"version {version} is already the champion"
        else:
            champ_value = _champion_value(held_out, f"models:/{name}/{champ}", metric_key)
            if _alias_version(client, name, CHAMPION) != champ:
                continue  # champion moved while we evaluated it: compare against the new one
            promoted, decision, reason = _compare(metric_key, new_value, margin, champ, champ_value, allow_ties)
        break
    else:
        raise RuntimeError(
            f"the champion of {name!r} moved {max_attempts} times while version {version} was being compared; "
            "re-run the promotion when other promotions have finished"
        )

    if promoted:
        _move_champion(client, name, version, champ, reason, action="gate")
    _set_version_tags(client, name, version, {
        "promotion.decision": decision,
        "promotion.reason": reason,
        "promotion.compared_to": champ if champ is not None else "none",
        "promotion.metric": metric_key,
        "promotion.new_value": new_value,
        "promotion.champion_value": champ_value if champ_value is not None else "none",
        "promotion.margin": margin,
        "promotion.at": utc_now(),
    })
    return PromotionDecision(name=name, version=version, promoted=promoted, decision=decision, reason=reason,
                             metric_key=metric_key, new_value=new_value, margin=float(margin),
                             champion_version=champ, champion_value=champ_value)


@task(name="promote", retries=2, retry_delay_seconds=2)
def gate(name: str, version: str, metric_key: str, margin: float, new_value: float, data_path: str,
         evaluate: dict[str, Any], allow_ties: bool = False) -> dict[str, str]:
    """The training flow's promotion step: :func:`promote_if_better` against the champion measured on
    the same held-out data (``data_path``, params ``evaluate``). Idempotent, so it may retry."""
    decision = promote_if_better(mlflow.MlflowClient(), name, version, metric_key, margin, new_value,
                                 HeldOut(data_path, EvaluateConfig.model_validate(evaluate)), allow_ties=allow_ties)
    return {"promotion": decision.decision, "reason": decision.reason}


# =============================================================================== by hand
def promote(client: MlflowClient, name: str, version: str | int, reason: str) -> dict[str, Any] | None:
    """Manually move ``champion`` to ``version`` (no gate); returns the history entry, or None when
    ``version`` already is the champion."""
    version = str(version)
    if not reason or not reason.strip():
        raise ValueError("a manual promotion needs a reason (it is kept in the champion history)")
    client.get_model_version(name, version)  # raises for an unknown version
    previous = _alias_version(client, name, CHAMPION)
    if previous == version:
        return None
    entry = _move_champion(client, name, version, previous, reason, action="promote")
    _set_version_tags(client, name, version, {
        "promotion.decision": "promoted (manual)",
        "promotion.reason": reason,
        "promotion.compared_to": previous or "none",
    })
    return entry


def _champion_stack(history: list[dict[str, Any]], current: str | None) -> list[str]:
    """Replay the history into a stack of champions (promotions push, rollbacks pop)."""
    stack: list[str] = []
    for e in history:
        v, frm = str(e.get("version")), e.get("from")
        if e.get("action") == "rollback" and stack and frm is not None and stack[-1] == str(frm):
            stack.pop()
        if not stack or stack[-1] != v:
            stack.append(v)
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)  # the alias was moved outside these functions
    return stack


def rollback(client: MlflowClient, name: str, reason: str = "rollback") -> dict[str, Any]:
    """Move ``champion`` back to the champion before the current one (per the history); returns the
    history entry. Raises ``ValueError`` when there is no previous champion to go back to."""
    current = _alias_version(client, name, CHAMPION)
    if current is None:
        raise ValueError(f"registered model {name!r} has no champion; nothing to roll back")
    stack = _champion_stack(champion_history(client, name), current)
    stack.pop()  # the current champion
    while stack:
        target = stack.pop()
        try:
            client.get_model_version(name, target)
        except MlflowException:
            continue  # that version was deleted since: go further back
        entry = _move_champion(client, name, target, current, f"{reason} (from v{current})", action="rollback")
        _set_version_tags(client, name, current, {
            "rollback.reason": f"{reason}: champion moved back to v{target}", "rollback.at": entry["at"],
        })
        return entry
    raise ValueError(
        f"registered model {name!r}: version {current} is the first champion in the history; "
        "there is no previous champion to roll back to (promote a specific version instead)"
    )


def load_champion(name: str) -> mlflow.pyfunc.PyFuncModel:
    """The current champion bundle as a pyfunc model (``models:/<name>@champion``)."""
    return mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
