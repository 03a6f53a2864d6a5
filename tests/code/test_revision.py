"""The label-revision rule on a hand-computed case (METHOD.md section 3, paper Eq. 6)."""

import numpy as np
import pytest

from capmix.detectors.capmix.revision import normal_centre, revise, soft_labels


def test_rule_hand_computed():
    # d = [2, 10, 10, 10]: mu = 8, sigma = sqrt(12) = 3.4641 (population), gamma = 1.5:
    # cutoff = 8 - 1.5 * 3.4641 = 2.8038; only d = 2 is below it -> soft label 1/1.5
    d = np.array([2.0, 10.0, 10.0, 10.0])
    labels, mu, sigma, cutoff = soft_labels(d, gamma=1.5)
    assert mu == pytest.approx(8.0)
    assert sigma == pytest.approx(12**0.5)
    assert cutoff == pytest.approx(8 - 1.5 * 12**0.5)
    np.testing.assert_allclose(labels, [1 / 1.5, 1.0, 1.0, 1.0], rtol=1e-6)
    assert labels.dtype == np.float32


def test_far_windows_keep_hard_label():
    labels, *_ = soft_labels(np.array([5.0, 5.0, 5.0, 50.0]), gamma=1.5)
    assert (labels == 1.0).all()  # nothing below mu - 1.5 sigma


@pytest.mark.parametrize("gamma", [1.0, 0.5, 0.0])
def test_gamma_must_exceed_one(gamma):
    with pytest.raises(ValueError, match="gamma"):
        soft_labels(np.ones(3), gamma)


def test_centre_uses_normal_windows_only():
    w = np.stack([np.zeros((4, 1)), np.ones((4, 1)) * 2, np.ones((4, 1)) * 100])
    np.testing.assert_allclose(normal_centre(w, np.array([0, 0, 1])), np.ones((4, 1)))
    np.testing.assert_allclose(normal_centre(w, None), np.full((4, 1), 34.0))


def test_revise_end_to_end_flags_near_centre_window():
    rng = np.random.default_rng(0)
    centre = np.sin(np.linspace(0, 6, 32))[:, None]
    far = centre + rng.normal(0, 1.0, (50, 32, 1))
    near = centre[None] + 0.001
    rev = revise(np.concatenate([near, far]).astype(np.float32), centre, gamma=2.0)
    assert rev.labels[0] == pytest.approx(0.5)
    assert rev.n_soft >= 1
