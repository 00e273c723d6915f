import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from vidcodec.quant.cell_mass import cell_offsets, gaussian_entropy, gaussian_samples, log2_cell_mass
from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.leech import leech_lattice, minimal_vectors
from vidcodec.quant.tables import cell_probabilities


def _z1_entropy(sigma: float) -> float:
    k = np.arange(-100, 101)
    p = ndtr((k + 0.5) / sigma) - ndtr((k - 0.5) / sigma)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_cell_mass_of_z1_matches_the_exact_erf_difference():
    z1 = get_lattice("z1")
    points = torch.arange(0, 7, dtype=torch.float64).unsqueeze(-1)
    k = points[:, 0].numpy()
    for sigma in (0.5, 1.0, 3.0):
        # Upper tail minus upper tail: no cancellation far from the mean.
        exact = np.log2(ndtr(-(k - 0.5) / sigma) - ndtr(-(k + 0.5) / sigma))
        measured = log2_cell_mass(points, sigma, cell_offsets(z1, 12)).numpy()
        assert np.allclose(measured, exact, atol=1e-3)


def test_cell_mass_of_a2_matches_the_quadrature_tables():
    a2 = get_lattice("a2")
    points = a2.points_within(3.0)
    exact = np.log2(cell_probabilities(a2, points, 0.8))
    # Out to cells of mass 2^-10; without the mirrored offsets the far cells are off by ~0.01 bit.
    assert np.allclose(log2_cell_mass(points, 0.8, cell_offsets(a2, 12)).numpy(), exact, atol=5e-3)


def test_offsets_are_mirrored_and_inside_the_cell():
    d4 = get_lattice("d4")
    offsets = cell_offsets(d4, 8)
    assert offsets.shape == (256, 4)
    assert torch.allclose(offsets.sum(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert (d4.quantize_coords(offsets) == 0).all()


def test_far_cells_in_24_dimensions_do_not_underflow():
    leech = leech_lattice()
    far = 30.0 * minimal_vectors()[:4]  # density exp(-3600 / (2 sigma^2)) underflows float64
    log2_p = log2_cell_mass(far, 0.5, cell_offsets(leech, 6))
    assert torch.isfinite(log2_p).all() and (log2_p < -1e4).all()


def test_gaussian_samples_have_the_requested_scale():
    x = gaussian_samples(8, 1 << 14, 2.5, seed=0)
    assert x.shape == (1 << 14, 8) and torch.isfinite(x).all()
    assert x.std().item() == pytest.approx(2.5, rel=0.01)
    assert abs(x.mean().item()) < 0.01


@pytest.mark.parametrize("sigma", [0.5, 2.0])
def test_entropy_estimate_matches_the_exact_z1_entropy(sigma):
    estimate = gaussian_entropy(get_lattice("z1"), sigma, num_samples=1 << 14, log2_cell_points=10)
    assert abs(estimate.bits - _z1_entropy(sigma)) < 3 * estimate.bits_error + 1e-4
    assert estimate.mse == pytest.approx(1 / 12, rel=0.02)


def test_entropy_estimate_is_near_the_high_rate_value_for_a_wide_source():
    """At sigma = 4 the entropy per dimension of a unit-volume lattice point is h(X) - log2 V plus
    the first correction log2(e) G / (2 sigma^2) (the point's second moment exceeds X's by G per
    dimension), ~0.003 bit; and the MSE per dimension is G."""
    e8 = get_lattice("e8")
    estimate = gaussian_entropy(e8, 4.0, num_samples=1 << 13, log2_cell_points=8)
    high_rate = math.log2(math.sqrt(2 * math.pi * math.e) * 4.0) + math.log2(math.e) * e8.nsm_theory / 32
    assert estimate.bits == pytest.approx(high_rate, abs=5e-4)
    assert estimate.mse == pytest.approx(e8.nsm_theory, rel=0.02)


def test_entropy_estimate_distinguishes_lattices():
    """A3* has lower entropy than Z^3 at the same sigma at low rate (and lower MSE): the estimator
    resolves the difference, which is several standard errors."""
    z3 = gaussian_entropy(get_lattice("z3"), 0.5, num_samples=1 << 14, log2_cell_points=10)
    a3 = gaussian_entropy(get_lattice("a3*"), 0.5, num_samples=1 << 14, log2_cell_points=10)
    assert z3.mse > a3.mse + 3 * (z3.mse_error + a3.mse_error)


def test_bad_sigma_is_refused():
    with pytest.raises(ValueError, match="sigma"):
        log2_cell_mass(torch.zeros(1, 2, dtype=torch.float64), 0.0, torch.zeros(4, 2, dtype=torch.float64))
