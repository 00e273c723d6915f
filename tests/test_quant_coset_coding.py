import math

import pytest
import torch

from vidcodec.quant.cell_mass import cell_offsets, gaussian_samples, log2_cell_mass
from vidcodec.quant.coset_coding import CosetModel, coset_form, from_symbols, to_symbols
from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.leech import leech_lattice, minimal_vectors

NAMES = ["z1", "z3", "a2", "a3*", "d4", "e8", "leech"]


def _lattice(name: str):
    return leech_lattice() if name == "leech" else get_lattice(name)


def _random_symbols(form, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (coset, k) obeying each coset's parity rule."""
    g = torch.Generator().manual_seed(seed)
    coset = torch.randint(0, len(form.shifts), (count,), generator=g)
    k = torch.randint(-20, 21, (count, form.dim), generator=g)
    parity = form.parity[coset]
    wrong = (parity >= 0) & (torch.remainder(k.sum(-1), 2) != parity.clamp(min=0))
    k[:, 0] += wrong.to(torch.int64)
    return coset, k


@pytest.mark.parametrize("name", NAMES)
def test_coset_form_describes_the_same_lattice(name):
    lattice, form = _lattice(name), coset_form(name)
    # Every (coset, k) is a lattice point ...
    coset, k = _random_symbols(form, 300, seed=0)
    points = from_symbols(form, coset, k)
    assert torch.allclose(lattice.nearest_point(points), points, atol=1e-9)
    # ... and every lattice point has its (coset, k), which gives it back.
    coords = torch.randint(-30, 31, (300, form.dim), generator=torch.Generator().manual_seed(1))
    points = lattice.from_coords(coords)
    c, k = to_symbols(form, points)
    assert torch.allclose(from_symbols(form, c, k), points, atol=1e-9)
    assert c.dtype == torch.int64 and 0 <= int(c.min()) and int(c.max()) < len(form.shifts)


def test_points_off_the_lattice_are_refused():
    form = coset_form("d4")
    one_odd = torch.zeros(1, 4, dtype=torch.float64)
    one_odd[0, 0] = form.step[0]  # k = e1: on the grid, odd sum, not in D4
    with pytest.raises(ValueError, match="not on the D4 lattice"):
        to_symbols(form, one_odd)
    with pytest.raises(ValueError, match="grid"):
        to_symbols(form, torch.full((1, 4), 0.3, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("sigma", [0.3, 1.0, 3.0])
def test_encode_decode_is_bit_exact(name, sigma):
    lattice, form = _lattice(name), coset_form(name)
    x = gaussian_samples(lattice.dim, 64 if name == "leech" else 512, sigma, seed=2)
    x[:3] *= 60.0  # far beyond every table: the escape path
    points = lattice.nearest_point(x)
    model = CosetModel(form, sigma)
    data = model.encode(points)
    decoded = CosetModel(form, sigma).decode(data, len(points))  # a fresh decoder: no shared state
    assert torch.equal(decoded, from_symbols(form, *to_symbols(form, points)))
    assert torch.allclose(decoded, points, atol=1e-9)


@pytest.mark.parametrize("name", ["z1", "a2", "d4"])
def test_model_probabilities_sum_to_one(name):
    lattice = get_lattice(name)
    sigma = 0.7
    points = lattice.points_within(sigma * (math.sqrt(lattice.dim) + 9.0) + 2.0)
    total = torch.exp2(-CosetModel(coset_form(name), sigma).model_bits(points)).sum().item()
    assert total == pytest.approx(1.0, abs=1e-6)


def test_leech_minimal_vectors_round_trip_through_the_stream():
    form = coset_form("leech")
    vectors = minimal_vectors()[::97]
    model = CosetModel(form, 1.0)
    assert torch.allclose(model.decode(model.encode(vectors), len(vectors)), vectors, atol=1e-9)


@pytest.mark.parametrize(("name", "sigma"), [("e8", 1.0), ("leech", 1.0), ("a2", 0.5), ("leech", 0.5)])
def test_rate_within_one_percent_of_the_ideal_cell_probability(name, sigma):
    """Issue 37's target at sigma >= 1, met down to sigma 0.5 thanks to the moment-matched box
    (with the grid's own box A2 was 4% and Leech 2% above at 0.5): the bytes of the stream against
    sum of -log2 P(cell), P integrated over each point's Voronoi cell (quant/cell_mass.py)."""
    lattice = _lattice(name)
    x = gaussian_samples(lattice.dim, 256 if name == "leech" else 2048, sigma, seed=4)
    points = lattice.nearest_point(x)
    ideal_bits = -log2_cell_mass(points, sigma, cell_offsets(lattice, 12, seed=1)).sum().item()
    model = CosetModel(coset_form(name), sigma)
    coded_bits = 8 * len(model.encode(points))
    assert coded_bits < 1.01 * ideal_bits
    assert model.model_bits(points).sum().item() < 1.005 * ideal_bits
    # And not suspiciously below: the model cannot beat the true distribution by much.
    assert coded_bits > 0.99 * ideal_bits


@pytest.mark.parametrize("seed", range(5))
def test_foreign_bytes_decode_to_lattice_points_or_a_clear_error(seed):
    """Untrusted input: random bytes never crash the decoder with anything but ValueError, and
    whatever it returns is on the lattice."""
    form = coset_form("leech")
    data = torch.randint(0, 256, (200,), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    try:
        points = CosetModel(form, 1.0).decode(bytes(data.tolist()), 16)
    except ValueError:
        return
    assert points.shape == (16, 24)
    assert torch.allclose(leech_lattice().nearest_point(points), points, atol=1e-9)


def test_bad_sigma_is_refused():
    with pytest.raises(ValueError, match="sigma"):
        CosetModel(coset_form("e8"), 0.0)
