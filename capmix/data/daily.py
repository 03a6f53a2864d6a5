"""Days of data from the embedded generator, as a production feed would deliver them (``capmix simulate``).

One long multi-series signal is generated once for a fixed horizon (so day 9 of a second simulated
week continues the same signal as days 1-7), then cut into days. Events are placed on chosen days:

* **drift** (from ``drift_day`` on): every channel is rescaled by ``drift_scale`` around its mean and
  shifted by ``drift_shift`` stds: a regime change the champion never saw;
* **broken schema** (``broken_day``): the last channel arrives renamed;
* **repeat** (``repeat_day``): the previous day's points arrive again, unchanged.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from capmix.data.canonical import LABEL_COL, SERIES_COL, TIMESTAMP_COL
from capmix.data.synthetic import GeneratorConfig, SignalConfig, generate

__all__ = ["HORIZON_DAYS", "SimulatedFeed"]

#: Days generated at once: simulated weeks continue one signal up to this day.
HORIZON_DAYS = 56
SECONDS_PER_DAY = 86_400
START = datetime(2024, 1, 1)


class SimulatedFeed:
    """``history()`` (the days before day 1) and ``day(k)`` (k = 1, 2, ...) as long frames."""

    def __init__(self, series: int, channels: int, points_per_day: int, history_days: int, anomalies_per_day: int,
                 drift_day: int | None, drift_scale: float, drift_shift: float, broken_day: int | None,
                 repeat_day: int | None, seed: int) -> None:
        self.ppd = points_per_day
        self.history_days = history_days
        self.drift_day, self.drift_scale, self.drift_shift = drift_day, drift_scale, drift_shift
        self.broken_day, self.repeat_day = broken_day, repeat_day
        total = history_days + HORIZON_DAYS
        cfg = GeneratorConfig(
            name="feed", n_series=series, n_channels=channels, length=total * points_per_day,
            train_fraction=history_days / total, anomalies_per_series=anomalies_per_day * HORIZON_DAYS,
            min_anomaly_length=8, max_anomaly_length=min(120, points_per_day // 8), seed=seed,
            sampling_interval_s=max(SECONDS_PER_DAY // points_per_day, 1), start_time=START,
            # a day is a short stretch: keep the slow trend small, so that days without an event do not drift
            signal=SignalConfig(trend_drift_range=(-0.2, 0.2), max_trend_breakpoints=0),
        )
        self._series = generate(cfg)
        ref = slice(0, history_days * points_per_day)
        self._mean = [s.values[ref].mean(axis=0) for s in self._series]
        self._std = [s.values[ref].std(axis=0) for s in self._series]

    def _frame(self, first_day: int, n_days: int) -> pd.DataFrame:
        """Days ``first_day`` .. ``first_day + n_days - 1`` counted from 0 = the first history day."""
        if first_day + n_days > self.history_days + HORIZON_DAYS:
            raise ValueError(f"the simulated feed holds {HORIZON_DAYS} days after the history; day "
                             f"{first_day + n_days - self.history_days} is beyond it. Fix: start a new --workdir")
        span = slice(first_day * self.ppd, (first_day + n_days) * self.ppd)
        parts = []
        for s, mean, std in zip(self._series, self._mean, self._std):
            x = s.values[span].copy()
            if self.drift_day is not None:
                # absolute day index of every point, compared with the drift's first day
                day_index = np.arange(span.start, span.stop) // self.ppd - self.history_days + 1
                hit = day_index >= self.drift_day
                x[hit] = mean + self.drift_scale * (x[hit] - mean) + self.drift_shift * std
            part = pd.DataFrame(x, columns=list(s.channels))
            part.insert(0, LABEL_COL, pd.array(s.labels[span], dtype="Int8"))
            part.insert(0, TIMESTAMP_COL, s.timestamps[span])
            part.insert(0, SERIES_COL, s.name)
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    def history(self) -> pd.DataFrame:
        """The days before day 1 (what the history starts with)."""
        return self._frame(0, self.history_days)

    def day(self, k: int) -> pd.DataFrame:
        """Day ``k`` (1-based) as the feed delivers it, events included."""
        if k < 1:
            raise ValueError(f"days are counted from 1, got {k}")
        if self.repeat_day is not None and k == self.repeat_day:
            return self.day(k - 1)
        frame = self._frame(self.history_days + k - 1, 1)
        if self.broken_day is not None and k == self.broken_day:
            last = frame.columns[-1]
            frame = frame.rename(columns={last: f"{last}_v2"})
        return frame

    def date(self, k: int) -> str:
        """The calendar day of day ``k`` (its inbox file name)."""
        return (pd.Timestamp(START) + pd.Timedelta(days=self.history_days + k - 1)).strftime("%Y-%m-%d")
