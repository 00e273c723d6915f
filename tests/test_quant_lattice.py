import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidcodec.quant.lattice import get_lattice, normalized_second_moment

NAMES = ["z1", "z3", "a2", "a3*", "d4", "e8"]


@pytest.mark.parametrize("name", NAMES)
def test_normalized_second_moment_matches_theory(name):
    lattice = get_lattice(name)
    measured = normalized_second_moment(lattice, num_samples=200_000, seed=1)
    assert measured == pytest.approx(lattice.nsm_theory, rel=0.005)


def test_nsm_theory_values_of_the_issue():
    expected = {"z1": 0.08333, "a2": 0.08019, "a3*": 0.07854, "d4": 0.07660, "e8": 0.07168}
    for name, value in expected.items():
        assert get_lattice(name).nsm_theory == pytest.approx(value, abs=5e-6)


@pytest.mark.parametrize("name", NAMES)
def test_unit_volume_and_coordinate_round_trip(name):
    lattice = get_lattice(name)
    assert abs(torch.linalg.det(lattice.generator).item()) == pytest.approx(1.0, abs=1e-12)
    coords = torch.randint(-20, 20, (1000, lattice.dim))
    points = lattice.from_coords(coords)
    assert torch.equal(lattice.to_coords(points), coords)
    assert torch.allclose(lattice.nearest_point(points), points, atol=1e-12)


def brute_force_distance(lattice, x: torch.Tensor, span: int) -> torch.Tensor:
    """Distance from each x to the nearest of many candidate lattice points around it.

    Z, A2, A3*, D4 (near-orthogonal bases): all points whose integer coordinates are within
    ``span`` of the rounded coordinates of x. E8 (skewed basis): all points of D8 and D8 + 1/2 whose
    ambient coordinates are within 1 of x, which holds every point within the covering radius (1).
    """
    if lattice.name == "E8":
        scale = lattice.generator.abs().max().item() / 2.0  # ambient unit of the unscaled E8
        candidates_per_coset = []
        offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=8)), dtype=torch.float64)
        for shift in (0.0, 0.5):
            base = torch.round(x / scale - shift)
            cand = base[:, None, :] + offsets[None] + shift
            even = (torch.round(cand - shift).sum(-1) % 2) == 0
            dist = ((cand * scale - x[:, None, :]) ** 2).sum(-1)
            candidates_per_coset.append(torch.where(even, dist, torch.inf).min(dim=1).values)
        return torch.minimum(*candidates_per_coset)
    k0 = torch.round(x @ torch.linalg.inv(lattice.generator)).to(torch.int64)
    offsets = torch.tensor(list(itertools.product(range(-span, span + 1), repeat=lattice.dim)))
    best = torch.full((len(x),), float("inf"), dtype=torch.float64)
    for chunk in offsets.split(2048):
        candidates = lattice.from_coords(k0[:, None, :] + chunk[None])
        best = torch.minimum(best, ((candidates - x[:, None, :]) ** 2).sum(-1).min(dim=1).values)
    return best


@pytest.mark.parametrize("name, num_vectors, span", [("z1", 100_000, 2), ("a2", 100_000, 2), ("a3*", 100_000, 2),
                                                     ("d4", 100_000, 2), ("e8", 10_000, 1)])
def test_nearest_point_agrees_with_brute_force(name, num_vectors, span):
    lattice = get_lattice(name)
    x = torch.randn(num_vectors, lattice.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    fast = ((lattice.nearest_point(x) - x) ** 2).sum(-1)
    exhaustive = torch.cat([brute_force_distance(lattice, chunk, span) for chunk in x.split(250)])
    assert torch.allclose(fast, exhaustive, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_boundary_points_are_resolved_the_same_way_every_time(name):
    lattice = get_lattice(name)
    points = lattice.from_coords(torch.randint(-5, 5, (200, lattice.dim)))
    neighbours = lattice.points_within(1.5)[1:]  # the shortest vectors and more, origin excluded
    midpoints = points[:, None, :] + 0.5 * neighbours[None, : min(len(neighbours), 12), :]
    midpoints = midpoints.reshape(-1, lattice.dim)
    first = lattice.nearest_point(midpoints)
    assert torch.equal(first, lattice.nearest_point(midpoints))
    permutation = torch.randperm(len(midpoints), generator=torch.Generator().manual_seed(3))
    assert torch.equal(lattice.nearest_point(midpoints[permutation]), first[permutation])
    # the answer is a nearest point (a tie, at equal distance, is allowed)
    exhaustive = brute_force_distance(lattice, midpoints, 1)
    assert torch.allclose(((first - midpoints) ** 2).sum(-1), exhaustive, atol=1e-9)


@pytest.mark.parametrize("name", ["a2", "a3*", "d4"])
def test_points_within_matches_a_brute_force_count(name):
    lattice = get_lattice(name)
    center = torch.tensor([0.3] * lattice.dim, dtype=torch.float64)
    points = lattice.points_within(3.0, center)
    box = torch.tensor(list(itertools.product(range(-8, 9), repeat=lattice.dim)))
    all_points = lattice.from_coords(box)
    expected = int((torch.linalg.norm(all_points - center, dim=-1) <= 3.0).sum())
    assert len(points) == expected
    distances = torch.linalg.norm(points - center, dim=-1)
    assert torch.all(distances[1:] >= distances[:-1] - 1e-9)
    assert torch.equal(points, lattice.points_within(3.0, center))


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    offset=st.lists(st.floats(-0.3, 0.3), min_size=8, max_size=8),
    shift=st.lists(st.integers(-50, 50), min_size=8, max_size=8),
)
def test_translation_by_a_lattice_vector(name, offset, shift):
    lattice = get_lattice(name)
    # x well inside the cell of a lattice point: no ties
    base = lattice.from_coords(torch.tensor(shift[: lattice.dim]))
    x = base + 0.5 * torch.tensor(offset[: lattice.dim], dtype=torch.float64) * 0.9
    p = lattice.from_coords(torch.tensor([3] * lattice.dim))
    assert torch.allclose(lattice.nearest_point(x + p), lattice.nearest_point(x) + p, atol=1e-9)


def test_unknown_lattice_lists_the_names():
    with pytest.raises(ValueError, match="a2/hex"):
        get_lattice("leech")
