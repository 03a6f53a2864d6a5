"""The Gaussian density of learned features behind ``window_score: gde``."""

import numpy as np
import pytest
import torch

from capmix.detectors.capmix.density import GaussianDensity


def test_in_distribution_distances_average_the_dimension():
    rng = np.random.default_rng(0)
    cov = np.diag(np.linspace(0.1, 5.0, 8))
    train = rng.multivariate_normal(np.full(8, 3.0), cov, size=20000)
    test = rng.multivariate_normal(np.full(8, 3.0), cov, size=5000)
    d = GaussianDensity.fit(train).score(torch.as_tensor(test)).numpy()
    # the squared Mahalanobis distance of a Gaussian sample is chi-square with D degrees of freedom
    assert abs(d.mean() - 8) < 0.3


def test_scale_of_each_direction_matters():
    rng = np.random.default_rng(1)
    train = rng.standard_normal((5000, 2)) * np.array([10.0, 0.1])
    density = GaussianDensity.fit(train)
    along_wide, along_narrow = density.score(torch.tensor([[5.0, 0.0], [0.0, 0.5]])).numpy()
    # 5 in a direction of std 10 is ordinary; 0.5 in a direction of std 0.1 is 5 sigma (Ledoit-Wolf
    # shrinks the two variances towards each other, so the ratio is below the unshrunk 50)
    assert along_narrow > 10 * along_wide


def test_fewer_samples_than_dimensions_stays_finite():
    rng = np.random.default_rng(2)
    train = rng.standard_normal((20, 64))
    train[:, 10] = 0.0  # a dead unit
    density = GaussianDensity.fit(train)
    scores = density.score(torch.as_tensor(rng.standard_normal((100, 64)))).numpy()
    assert np.isfinite(scores).all() and (scores >= 0).all()
    np.testing.assert_allclose(density.precision, density.precision.T)


def test_constant_features_stay_invertible():
    density = GaussianDensity.fit(np.ones((50, 4)))
    assert np.isfinite(density.precision).all()
    assert density.score(torch.ones(1, 4)).item() == pytest.approx(0.0, abs=1e-6)


def test_too_few_samples_named():
    with pytest.raises(ValueError, match="at least 2 normal feature vectors"):
        GaussianDensity.fit(np.zeros((1, 4)))
