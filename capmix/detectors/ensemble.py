"""The label-free ensemble: CAPMix and classic scores, chosen per series by how clearly one peak stands out.

``fit`` (training period only) estimates the period (:mod:`capmix.detectors.period`), trains the
learned members (CAPMix by default, on its own params) and keeps the training series as the
reference of the classic scores. ``decision_function(X)`` builds the candidate scores of ``X``
(:func:`capmix.detectors.classic.candidate_scores`: rolling statistics and matrix-profile joins on
windows tied to the period, plus each learned member's score), every one robust-z-normalised
against the same score on known-normal training data, and then

* ``selection: confidence`` returns the candidate whose top peak stands highest above its second
  (:func:`capmix.detectors.confidence.peak_confidence`): the right question when a series holds one
  anomaly (UCR);
* ``selection: mean`` returns the mean of the candidates (a fixed choice, for data with many
  anomalies, where "one peak stands out" cannot be judged);
* ``selection: auto`` uses the confident candidate when its confidence reaches ``min_confidence``
  and ``fallback`` otherwise.

``scheme: sweep`` replaces the period-tied candidates by the whole-series family of
:mod:`capmix.detectors.sweep` (a geometric window sweep of non-negative scores over reference +
input) ranked by :func:`capmix.detectors.confidence.peak_ratio`; the chosen score is returned in
units of its own maximum over the reference. Its scores taper to zero over the last ``(1 + 3)`` windows
of the input (truncated windows at the series' end would otherwise make the loudest peaks), so it
suits scoring a long test part at once (UCR), not a stream of short chunks.

Input is scored channel by channel by default (``multivariate: per_channel``): each channel's choice
among its own classic candidates and the members, combined by the maximum. ``multivariate: joint``
scores multivariate input with learned members on the JOINT window instead: the members already see
all channels together, and their fixed fallback is the score (``selection: confidence`` keeps the
most confident member). Joint won where it was chosen (bench/ensemble_fallback_study.py: ASD and SMD,
where one confident pick among 19-38 channels decides the maximum and channels constant in training
give robust z-scores in the billions) and costs ~1 s instead of ~10 s per channel, but lost on the
data kept for the check (SMAP -21, MSL -6 AUC-PR points: one telemetry channel beside one-hot command
channels, where the per-channel maximum finds the telemetry anomaly), so it is an option, not the
default (docs/results.md). ``threshold_`` comes from the same
procedure on the held-out tail of the training period (``val_fraction``), with the reference cut
before it, so ``predict`` never looks past training data.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from capmix.detectors.base import BaseDetector, as_labels, as_series, data_digest
from capmix.detectors.classic import candidate_scores, robust_z
from capmix.detectors.confidence import peak_confidence
from capmix.detectors.period import estimate_period
from capmix.detectors.sweep import JOIN_KINDS, ROLL_KINDS, candidate_ratio, sweep_candidates, sweep_windows

FORMAT_VERSION = 1
MEMBER_SCALES = ("z", "log", "tail")


def scale_member(z: np.ndarray, scale: str, ref: np.ndarray | None = None) -> np.ndarray:
    """A learned member's robust z-scores on the scale the pool compares and averages.

    * ``z``: as they are. A member's z-range depends on its score's shape (an RBF OC-SVM's is bounded,
      an Isolation Forest's or CAPMix's is not), so the plain mean follows the widest member.
    * ``log``: sign(z) log(1 + |z|), a compression.
    * ``tail``: -log10 of the share of ``ref`` (the member's own held-out training scores, same
      units) at least as high: every member in the same units of surprise. Above the highest held-out
      score it continues linearly, one unit per spread of ``ref``'s top 1 %, so points beyond all of
      training still rank among themselves. Chosen for SMD/ASD on their odd entities (docs/results.md).
    """
    z = np.asarray(z, dtype=np.float64)
    if scale == "z":
        return z
    if scale == "log":
        return np.sign(z) * np.log1p(np.abs(z))
    if scale == "tail":  # -log10 of the share of held-out scores at least as high; beyond them, in z steps
        if ref is None:
            raise ValueError("member scale 'tail' needs the member's held-out training scores (ref)")
        r = np.sort(np.asarray(ref, dtype=np.float64))
        n = r.size
        if n == 0:
            return z
        above = n - np.searchsorted(r, z, side="left")
        out = -np.log10((above + 1.0) / (n + 1.0))
        top = z > r[-1]
        span = max(float(r[-1] - r[int(0.99 * (n - 1))]), 1e-12)
        out[top] += (z[top] - r[-1]) / span
        return out
    raise ValueError(f"unknown member scale {scale!r}; choose one of {MEMBER_SCALES}")


class EnsembleConfig(BaseModel):
    """Hyperparameters of the ensemble; params.yaml ``ensemble`` (+ ``ensemble_presets.<preset>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- segments and decision, shared with the dataset's CAPMix preset (every detector is judged alike)
    window: int = Field(64, ge=2, description="evaluation window (the dataset's CAPMix window)")
    stride: int = Field(16, ge=1, description="evaluation stride")
    threshold_z: float = Field(3.0, description="validation rule: mean + z * std of held-out scores")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="training tail that sets the threshold")
    seed: int = 0

    # -- members
    # CAPMix (its density score) beside the window baselines, in the pool and the fallback: +4.0 AUC-PR
    # points on five univariate-heavy sets and ahead on SMAP/MSL, chosen there; held on the odd UCR
    # half by the archive rule (bench/ensemble_member_study.py, docs/results.md "Fourth round").
    # It costs CAPMix's training; members=("ocsvm", "iforest") is the faster window-only pool.
    members: tuple[str, ...] = Field(("capmix", "ocsvm", "iforest"),
                                     description="learned detectors (registry names) in the pool")
    member_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="hyperparameters per member (the registry fills them from params.yaml)")
    member_seeds: int = Field(
        1, ge=1, description="each member is fitted this many times, with seeds seed, seed+1, ...: restarts that "
                             "selection 'confidence' chooses among, or 'mean' averages (bench/capmix_restarts.py)")
    classic: bool = Field(True, description="add the classic rolling-statistic and matrix-profile candidates")
    member_scale: Literal["z", "log", "tail"] = Field(
        "z", description="each member's robust z as it is, log-compressed, or as the -log10 share of its held-out "
                         "training scores at least as high (scale_member) before the pool compares and averages them")

    # -- which classic family: period-tied robust z-scores ranked by peak_confidence, or the
    # whole-series window sweep ranked by peak_ratio (capmix/detectors/sweep.py)
    scheme: Literal["period", "sweep"] = Field("period", description="classic candidate family")

    # -- classic candidates, scheme 'period' (windows are multiples of the estimated period)
    roll_mults: tuple[float, ...] = (0.5, 1.0, 2.0)
    mp_mults: tuple[float, ...] = (1.0, 2.0)
    roll_kinds: tuple[str, ...] = ("std_diff", "ptp_diff")
    mp_kinds: tuple[str, ...] = ("mp_novelty", "mp_discord", "mp_raw_novelty", "mp_raw_discord")
    flat_kinds: tuple[str, ...] = Field((), description="inverse rolling statistics (flat lines score high), "
                                        "e.g. [std_diff_inv, std_inv]; none by default")
    flat_mults: tuple[float, ...] = Field((2.0, 4.0), description="windows of the flat kinds, in periods")
    mp_smooth: float = Field(0.0, ge=0.0, description="moving mean of each join score over this many join windows (0 = none)")
    points_per_period: int = Field(32, ge=4, description="matrix-profile joins run on this many points per period")
    max_join_points: int = Field(40_000, ge=1000, description="longest series a join sees (block means beyond)")
    default_period: int = Field(100, ge=4, description="window unit when no period is found")
    min_period: int = Field(4, ge=2)
    max_period: int = Field(4000, ge=8)

    # -- classic candidates, scheme 'sweep' (windows in points, independent of the period)
    sweep_min_window: int = Field(50, ge=4, description="smallest window of the geometric sweep")
    sweep_max_window: int = Field(800, ge=4, description="largest window of the geometric sweep")
    sweep_growth: float = Field(1.2, gt=1.0, description="ratio of consecutive sweep windows")
    # the density-ratio joins (np_novelty, np_outlier) are left out: on the odd UCR series they won
    # 13 selections and were wrong on 13 (110/125 hits without them, 104/125 with; docs/results.md)
    sweep_kinds: tuple[str, ...] = Field(ROLL_KINDS + ("mp_novelty", "mp_outlier"), description="whole-series score kinds")
    sweep_min_train_windows: int = Field(10, ge=1, description="a window is used when the reference holds it this often")
    sweep_join_points: int = Field(10_000, ge=500, description="joins of the sweep run on at most this many block means")

    # -- selection
    selection: Literal["confidence", "mean", "auto"] = "auto"
    min_confidence: float = Field(0.3, description="auto: below this the fallback decides (scheme period)")
    # odd UCR half, scheme sweep: picks with a ratio >= 1.5 hit 99 of 100, below it 11 of 25
    min_ratio: float = Field(1.5, gt=0.0, description="auto: below this peak ratio the fallback decides (scheme sweep)")
    fallback: Literal["mean", "members"] = Field(
        "members", description="auto's fixed choice: the mean of the learned members' scores, or of all candidates")
    fallback_members: tuple[str, ...] | None = Field(
        None, description="members averaged by fallback 'members' (None = all); the others only compete on confidence")
    member_weights: dict[str, float] = Field(
        default_factory=dict, description="weight of each member (registry name) in the fallback's mean; a member "
                                          "not named weighs 1, restarts share their member's weight")
    pick_combine: Literal["replace", "mean", "max"] = Field(
        "replace", description="auto, scheme period: a trusted pick replaces the fallback, or joins it by the mean "
                               "or the maximum of the two robust z-scores (the pick adds an anomaly, never hides one)")
    min_exclusion: int = Field(100, ge=1, description="peaks closer than max(window, this) points are one peak")
    confidence_reference: bool = Field(
        True, description="scheme period: the held-out training scores' high quantile counts as a competing "
                          "peak in each candidate's confidence (false: the scored input alone decides)")
    multivariate: Literal["joint", "per_channel"] = Field(
        "per_channel", description="input with several channels: the learned members on the joint window (their "
                             "fallback, or the most confident under selection 'confidence'), or every channel's "
                             "own choice combined by the maximum; without members always per_channel")

    @field_validator("sweep_kinds")
    @classmethod
    def _known_sweep_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(kinds) - set(ROLL_KINDS + JOIN_KINDS))
        if unknown or not kinds:
            raise ValueError(f"sweep_kinds {sorted(unknown) or '[]'} unknown or empty; choose from {list(ROLL_KINDS + JOIN_KINDS)}")
        return kinds

    @model_validator(mode="after")
    def _fallback_within_members(self) -> EnsembleConfig:
        # a preset that changes `members` inherits the base `fallback_members`: say so instead of
        # silently averaging fewer members than intended
        if self.members and self.fallback_members is not None:
            stray = [m for m in self.fallback_members if m not in self.members]
            if stray:
                raise ValueError(f"fallback_members {stray} are not among members {list(self.members)}; "
                                 "list only members there (or null for all of them)")
        return self

    @model_validator(mode="after")
    def _weights_of_members(self) -> EnsembleConfig:
        stray = [m for m in self.member_weights if m not in self.members]
        if stray:
            raise ValueError(f"member_weights names {stray}, which are not among members {list(self.members)}; "
                             "weigh only members")
        bad = {m: w for m, w in self.member_weights.items() if not w > 0}
        if bad:
            raise ValueError(f"member_weights {bad} must be positive; leave a member out of members to drop it")
        return self

    def replace(self, **changes: Any) -> EnsembleConfig:
        return EnsembleConfig.model_validate({**self.model_dump(), **changes})


class EnsembleDetector(BaseDetector):
    """CAPMix + classic scores, selected or averaged per series without labels (see the module docstring)."""

    kind = "ensemble"
    format_version = FORMAT_VERSION

    def __init__(self, config: EnsembleConfig | None = None, **overrides: Any):
        base = config if config is not None else EnsembleConfig()
        self.config = base.replace(**overrides) if overrides else base

    @property
    def n_epochs(self) -> int:
        return max([1, *(m.n_epochs for m in self._unfitted_members())])

    # ------------------------------------------------------------------ fit
    def _unfitted_members(self) -> list[BaseDetector]:
        from capmix.detectors.registry import build_detector

        cfg = self.config
        out = []
        for name, restart in self._member_slots():
            kw = {"seed": cfg.seed, **cfg.member_params.get(name, {})}
            out.append(build_detector(name, **{**kw, "seed": kw["seed"] + restart}))
        return out

    def _member_slots(self) -> list[tuple[str, int]]:
        """(registry name, restart) of each member in ``members_`` order: restart i has seed + i."""
        return [(name, i) for name in self.config.members for i in range(self.config.member_seeds)]

    def _member_names(self) -> list[str]:
        """The registry name of each fitted member, in ``members_`` order (restarts repeat it)."""
        return [name for name, _ in self._member_slots()]

    def fit(self, X: Any, y: Any | None = None, on_epoch: Any = None) -> EnsembleDetector:
        """Learn from the training period: period, learned members, reference series, threshold."""
        cfg = self.config
        X = as_series(X)
        labels = as_labels(y, X.shape[0]) if y is not None else None
        if X.shape[0] < 3 * cfg.window:
            raise ValueError(f"X has {X.shape[0]} points; the ensemble needs at least three windows "
                             f"({3 * cfg.window}) to fit, hold out a tail and set a threshold")
        self.n_channels_ = X.shape[1]
        self.train_digest_ = data_digest(X, labels)
        self.periods_ = [estimate_period(X[:, c], cfg.min_period, cfg.max_period) for c in range(X.shape[1])]
        self.members_ = [m.fit(X, labels, on_epoch=on_epoch) for m in self._unfitted_members()]
        # threshold: score the held-out tail against a reference that ends before it
        split = self._validation_split(X.shape[0])
        self.reference_ = X[:split]
        val = self._scores(X[split:])
        self.reference_ = X
        self._set_threshold(val, cfg.threshold_z)
        return self

    def _validation_split(self, n: int) -> int:
        """Where the held-out tail that sets ``threshold_`` starts in an ``n``-point training series."""
        cfg = self.config
        return min(max(int(round(n * (1.0 - cfg.val_fraction))), 2 * cfg.window), n - cfg.window)

    def fit_report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"period": self.periods_[0] if len(self.periods_) == 1 else None}
        for m in self.members_:
            report.update({f"{m.kind}.{k}": v for k, v in m.fit_report().items() if k != "augmentation"})
        return report

    # ------------------------------------------------------------------ score
    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of every point of ``X`` (higher = more anomalous)."""
        return self._scores(self._check_input(X, self.config.window))

    def explain(self, X: Any) -> list[dict[str, Any]]:
        """Per channel (one entry, channel None, when scored on the joint window): every candidate's
        kind, window and confidence, and which one was chosen (``selection_`` after ``decision_function(X)``)."""
        self.decision_function(X)
        return self.selection_

    def _scores(self, X: np.ndarray) -> np.ndarray:
        members = self._member_candidates(X)  # scored once, shared by every channel's pool
        cfg = self.config
        joint = bool(members) and X.shape[1] > 1 and cfg.multivariate == "joint"
        if not cfg.classic or joint:
            # joint window: auto never takes a pick (the members' fallback decides), see the docstring
            scores, info = self._combine(members, pick_ok=not joint)
            self.selection_ = [{"channel": None, "period": None, **info}]
            return scores
        per_channel = [self._channel(X, c, members) for c in range(X.shape[1])]
        # what the last call chose, per channel (explain() without scoring twice)
        self.selection_ = [info for _, info in per_channel]
        return np.max(np.stack([scores for scores, _ in per_channel]), axis=0)

    def _member_candidates(self, X: np.ndarray) -> list[tuple[str, int, np.ndarray, np.ndarray]]:
        """Each learned member's scores of X, robust-z against its own held-out training scores
        (on the ``member_scale``)."""
        cfg, out = self.config, []
        for m in self.members_:
            ref = np.asarray(m.val_scores_, dtype=np.float64)
            z, z_ref = robust_z(m.decision_function(X), ref), robust_z(ref, ref)
            out.append((m.kind, int(m.segments[0]), scale_member(z, cfg.member_scale, z_ref),
                        scale_member(z_ref, cfg.member_scale, z_ref)))
        return out

    def _channel(self, X: np.ndarray, c: int, members: list[tuple]) -> tuple[np.ndarray, dict[str, Any]]:
        cfg, period = self.config, self.periods_[c]
        if cfg.scheme == "sweep":
            scores, info = self._sweep(self.reference_[:, c], X[:, c], members)
            return scores, {"channel": c, "period": period, **info}
        cands = list(candidate_scores(
            self.reference_[:, c], X[:, c], period, roll_mults=cfg.roll_mults, mp_mults=cfg.mp_mults,
            points_per_period=cfg.points_per_period, max_len=cfg.max_join_points,
            default_period=cfg.default_period, roll_kinds=cfg.roll_kinds, mp_kinds=cfg.mp_kinds,
            flat_kinds=cfg.flat_kinds, flat_mults=cfg.flat_mults, mp_smooth=cfg.mp_smooth))
        scores, info = self._combine(cands + members)
        return scores, {"channel": c, "period": period, **info}

    def _combine(self, cands: list[tuple], pick_ok: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
        """The selection rule: the most confident candidate, or the fixed fallback (the fallback
        whenever ``pick_ok`` is False and the selection is not ``confidence``)."""
        cfg = self.config
        conf = [peak_confidence(s, max(int(w), cfg.min_exclusion), ref if cfg.confidence_reference else None)
                for _, w, s, ref in cands]
        best = int(np.argmax(conf))
        info = {"candidates": [(k, int(w), float(q)) for (k, w, _, _), q in zip(cands, conf)],
                "chosen": best, "confidence": float(conf[best])}
        pick = np.asarray(cands[best][2], dtype=np.float64)
        trusted = cfg.selection == "auto" and pick_ok and conf[best] >= cfg.min_confidence
        if cfg.selection == "confidence" or (trusted and cfg.pick_combine == "replace"):
            return pick, info
        if cfg.fallback == "mean" or not self.members_:
            fallback = np.mean(np.stack([np.asarray(s, dtype=np.float64) for _, _, s, _ in cands]), axis=0)
        else:
            fallback = self._fallback_mean(cands[-len(self.members_):])
        if trusted:  # many anomalies per series: the pick finds one kind, the fallback the others
            info["combined"] = cfg.pick_combine
            return ((pick + fallback) / 2 if cfg.pick_combine == "mean" else np.maximum(pick, fallback)), info
        info["chosen"] = "mean"
        return fallback, info

    def _sweep_windows(self, n_reference: int) -> list[int]:
        """The sweep's windows that the reference holds ``sweep_min_train_windows`` times; a short
        reference falls back to the one window it can hold (a fit needs >= 3 evaluation windows)."""
        cfg = self.config
        windows = [w for w in sweep_windows(cfg.sweep_min_window, max(cfg.sweep_min_window, cfg.sweep_max_window),
                                            cfg.sweep_growth) if w * cfg.sweep_min_train_windows <= n_reference]
        return windows or [max(4, n_reference // cfg.sweep_min_train_windows)]

    def _sweep(self, ref: np.ndarray, x: np.ndarray, members: list[tuple]) -> tuple[np.ndarray, dict[str, Any]]:
        """Scheme 'sweep': the candidate with the highest peak ratio, in units of its own training
        maximum (> 1: above anything the reference reached), so thresholds compare across kinds.
        Learned members have signed scores, where a ratio means nothing: they never compete, they
        are auto's fallback (``fallback: members``); ``mean`` averages the scaled sweep candidates."""
        cfg = self.config
        windows = self._sweep_windows(ref.shape[0])
        cands = list(sweep_candidates(ref, x, windows, cfg.sweep_kinds, min_train_windows=1,
                                      max_join_points=cfg.sweep_join_points))
        ratio = [candidate_ratio(k, w, s, r) for k, w, s, r in cands]
        best = int(np.argmax(ratio))
        info = {"candidates": [(k, int(w), float(q)) for (k, w, _, _), q in zip(cands, ratio)],
                "chosen": best, "confidence": float(ratio[best])}

        def scaled(s: np.ndarray, r: np.ndarray) -> np.ndarray:
            top = float(np.max(r)) if r.size else 0.0
            return np.asarray(s, dtype=np.float64) / (top if top > 0 else max(float(np.max(s)), 1e-12))

        if cfg.selection == "confidence" or (cfg.selection == "auto" and ratio[best] >= cfg.min_ratio):
            return scaled(*cands[best][2:]), info
        info["chosen"] = "mean"
        if cfg.selection == "auto" and cfg.fallback == "members" and members:
            return self._fallback_mean(members), info
        return np.mean(np.stack([scaled(s, r) for _, _, s, r in cands]), axis=0), info

    def _fallback_mean(self, member_cands: list[tuple]) -> np.ndarray:
        """The fallback: the ``member_weights``-weighted mean of the ``fallback_members``' scores."""
        cfg = self.config
        keep = cfg.fallback_members  # registry names, in the order of `members`
        pool = [(c, name) for c, name in zip(member_cands, self._member_names()) if keep is None or name in keep]
        pool = pool or list(zip(member_cands, self._member_names()))
        w = np.array([cfg.member_weights.get(name, 1.0) for _, name in pool], dtype=np.float64)
        scores = np.stack([np.asarray(c[2], dtype=np.float64) for c, _ in pool])
        return (w / w.sum()) @ scores

    # ------------------------------------------------------------------ persistence
    def _state(self) -> dict[str, Any]:
        return {"periods": self.periods_, "multivariate": self.config.multivariate,
                "pick_combine": self.config.pick_combine, "member_scale": self.config.member_scale,
                "members": [{"kind": m.kind, "params": m.get_params(), "threshold": m.threshold_,
                             "state": m._state()} for m in self.members_]}

    def _weights(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference_}
        for i, m in enumerate(self.members_):
            out.update({f"m{i}.{k}": v for k, v in m._weights().items()})
            out[f"m{i}.val_scores"] = np.asarray(m.val_scores_, dtype=np.float64)
        return out

    def _restore(self, state: dict[str, Any], weights: dict[str, Any], device: str | None) -> None:
        from capmix.detectors.registry import detector_class

        if "multivariate" not in state:  # saved before the option existed: scored (and thresholded) per channel
            self.config = self.config.replace(multivariate="per_channel")
        if "pick_combine" not in state:  # saved before the option existed: a trusted pick replaced the fallback
            self.config = self.config.replace(pick_combine="replace")
        if "member_scale" not in state:  # saved before the option existed: members averaged as robust z
            self.config = self.config.replace(member_scale="z")
        self.periods_ = [None if p is None else int(p) for p in state["periods"]]
        self.reference_ = weights["reference"].numpy().astype(np.float64)
        self.members_ = []
        for i, spec in enumerate(state["members"]):
            m = detector_class(spec["kind"])(**spec["params"])
            m.n_channels_, m.threshold_ = self.n_channels_, float(spec["threshold"])
            own = {k[len(f"m{i}."):]: v for k, v in weights.items() if k.startswith(f"m{i}.")}
            m.val_scores_ = own.pop("val_scores").numpy()
            m._restore(spec["state"], own, device)
            self.members_.append(m)
