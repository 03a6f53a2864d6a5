"""The thread policy every detector's fit and scoring run under (capmix/threads.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import capmix
from capmix import threads
from capmix.threads import limited_threads, pick_threads


def test_the_default_leaves_the_libraries_alone_so_results_stay_reproducible(monkeypatch):
    monkeypatch.delenv(threads.ENV, raising=False)
    assert threads.DEFAULT_POLICY == "all" and pick_threads() is None
    before = torch.get_num_threads()
    with limited_threads() as n:
        assert n is None and torch.get_num_threads() == before


def test_auto_uses_the_cores_the_load_average_leaves_free(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "_running_now", lambda: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (5.4, 0.0, 0.0))
    assert pick_threads("auto") == 3
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (20.0, 0.0, 0.0))
    assert pick_threads("auto") == 1  # never below one
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert pick_threads("auto") == 8
    # a machine that just went quiet: the average still says 20, nothing else is runnable now
    monkeypatch.setattr(threads, "_running_now", lambda: 0)
    assert pick_threads("auto") == 8
    monkeypatch.setattr(threads, "_running_now", lambda: 6)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert pick_threads("auto") == 2
    monkeypatch.setenv(threads.ENV, "all")
    assert pick_threads() is None
    monkeypatch.setenv(threads.ENV, "2")
    assert pick_threads() == 2


@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_a_bad_setting_names_the_variable_and_the_choices(bad):
    with pytest.raises(ValueError, match="CAPMIX_THREADS.*auto, all or a positive"):
        pick_threads(bad)


def test_the_limit_holds_inside_and_is_undone_after_and_nesting_keeps_the_outer_choice():
    before = torch.get_num_threads()
    with limited_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
        with limited_threads(5) as inner:
            assert inner == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_every_detector_fits_and_scores_under_the_policy(monkeypatch):
    seen = []
    monkeypatch.setenv(threads.ENV, "1")
    x = np.sin(np.arange(2000) / 8.0)[:, None]
    det = capmix.build_detector("iforest", seed=0)

    real = torch.set_num_threads

    def spy(n):
        seen.append(n)
        real(n)

    monkeypatch.setattr(torch, "set_num_threads", spy)
    det.fit(x[:1500]).decision_function(x[1500:])
    assert seen and seen[0] == 1  # set to the policy's count on entry (and restored on exit)
