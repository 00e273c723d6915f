import itertools
import math

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vidcodec.quant.lattice import get_lattice, normalized_second_moment

NAMES = ["z1", "z2", "z3", "z8", "a2", "a3*", "d4", "e8"]
BRUTE_FORCE_NAMES = ["z1", "z3", "a2", "a3*", "d4", "e8"]

# Covering radius at unit volume: the standard lattice's (SPLAG ch. 4 and 21) times its scale
# |det|^(-1/dim). Z^n: sqrt(n)/2; A2 (min distance 1, det sqrt3/2): 1/sqrt3; BCC Z^3 u Z^3+1/2
# (det 1/2): sqrt5/4; D4 (det 2): 1; E8 (det 1): 1.
COVERING_RADIUS = {
    "z1": 0.5, "z3": math.sqrt(3) / 2, "z8": math.sqrt(2),
    "a2": 3**-0.5 * (math.sqrt(3) / 2) ** -0.5,
    "a3*": math.sqrt(5) / 4 * 2 ** (1 / 3),
    "d4": 2 ** (-1 / 4),
    "e8": 1.0,
}
# A deep hole (a point at the covering radius from the lattice), unscaled, and the scale.
DEEP_HOLE = {
    "z1": ([0.5], 1.0), "z3": ([0.5] * 3, 1.0),
    "a2": ([0.5, math.sqrt(3) / 6], (math.sqrt(3) / 2) ** -0.5),
    "a3*": ([0.5, 0.25, 0.0], 2 ** (1 / 3)),
    "d4": ([1.0, 0.0, 0.0, 0.0], 2 ** (-1 / 4)),
    "e8": ([1.0] + [0.0] * 7, 1.0),
}


def _smallest_squared_distances(r: torch.Tensor, offsets: torch.Tensor, top: int) -> torch.Tensor:
    """The ``top`` smallest |r - o|^2 over the rows o of offsets (C, dim), for r (N, dim); (N, top).

    Expanded as |o|^2 - 2 r.o + |r|^2: one matmul instead of an (N, C, dim) tensor."""
    d = torch.addmm((offsets**2).sum(-1), r, -2 * offsets.T)
    smallest = d.amin(-1, keepdim=True) if top == 1 else d.topk(top, dim=-1, largest=False).values
    return smallest + (r**2).sum(-1, keepdim=True)


def _box_search(lattice, x: torch.Tensor, span: int, top: int) -> torch.Tensor:
    """The ``top`` smallest squared distances from each x (N, dim) to the points whose integer
    coordinates lie within ``span`` of round(x @ inverse(generator)); (N, top)."""
    offsets = torch.tensor(list(itertools.product(range(-span, span + 1), repeat=lattice.dim)))
    offset_points = lattice.from_coords(offsets)  # (C, dim)
    k0 = torch.round(x @ torch.linalg.inv(lattice.generator)).to(torch.int64)
    return _smallest_squared_distances(x - lattice.from_coords(k0), offset_points, top)


def _e8_search(x: torch.Tensor, top: int) -> torch.Tensor:
    """Like _box_search for E8 = {p in Z^8 u (Z^8 + 1/2) : sum(p) even} (its own scale is 1).

    The covering radius is 1, so every point within 1 + small of x has each coordinate within 1 of
    x's: p = b + o with b = round(x - s) + s for s in {0, 1/2} and o in {-1, 0, 1}^8. Each nonzero
    o_i adds at least (1/2)^2, so at most 4 are nonzero: 1697 offsets per coset, half of them in E8."""
    offsets = torch.tensor([o for o in itertools.product((-1, 0, 1), repeat=8) if sum(map(abs, o)) <= 4],
                           dtype=torch.float64)
    # sum(b + o) is even iff sum(o) has the parity of sum(b): search only those offsets.
    by_parity = [offsets[torch.remainder(offsets.sum(-1), 2) == parity] for parity in (0, 1)]
    distances = []
    for s in (0.0, 0.5):
        b = torch.round(x - s) + s
        nearest = [_smallest_squared_distances(x - b, o, top) for o in by_parity]
        b_sum_is_odd = torch.remainder(torch.round(b.sum(-1, keepdim=True)), 2) != 0
        distances.append(torch.where(b_sum_is_odd, nearest[1], nearest[0]))
    return torch.cat(distances, dim=-1).topk(top, dim=-1, largest=False).values


def brute_force_squared_distances(lattice, x: torch.Tensor, top: int = 1) -> torch.Tensor:
    """The ``top`` smallest squared distances from x (N, dim) to the lattice, by exhaustive search
    over candidates shown to hold every point within (about) the covering radius; (N, top)."""
    name = lattice.name.lower()
    if name == "e8":
        return torch.cat([_e8_search(chunk, top) for chunk in x.split(2048)])
    # k* - k0 = (p* - x) @ inverse + (x @ inverse - k0): each entry is at most R |column| + 1/2.
    column_norms = torch.linalg.norm(torch.linalg.inv(lattice.generator), dim=0)
    span = 2
    assert 0.5 + COVERING_RADIUS[name] * column_norms.max().item() < span - 0.05
    return torch.cat([_box_search(lattice, chunk, span, top) for chunk in x.split(8192)])


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).sum(-1)


@pytest.mark.parametrize("name", NAMES)
def test_normalized_second_moment_matches_theory(name):
    lattice = get_lattice(name)
    measured = normalized_second_moment(lattice, num_samples=200_000, seed=1)
    assert measured == pytest.approx(lattice.nsm_theory, rel=0.005)


def test_nsm_theory_values_of_the_issue():
    expected = {"z1": 0.083333, "z3": 0.083333, "z8": 0.083333, "a2": 0.080188, "a3*": 0.078543,
                "d4": 0.076603, "e8": 0.071682}
    for name, value in expected.items():
        assert get_lattice(name).nsm_theory == pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_unit_volume_and_coordinate_round_trip(name):
    lattice = get_lattice(name)
    assert lattice.generator.dtype == torch.float64 and lattice.generator.shape == (lattice.dim, lattice.dim)
    assert abs(torch.linalg.det(lattice.generator).item()) == pytest.approx(1.0, abs=1e-12)
    coords = torch.randint(-1000, 1000, (2000, lattice.dim), generator=torch.Generator().manual_seed(0))
    points = lattice.from_coords(coords)
    assert points.dtype == torch.float64
    assert torch.equal(lattice.to_coords(points), coords)
    assert torch.equal(lattice.quantize_coords(points), coords)
    assert torch.equal(lattice.nearest_point(points), points)  # bit-exact: nearest_point goes via coords
    near = lattice.nearest_point(points.float())
    assert near.dtype == torch.float32 and torch.allclose(near.double(), points, atol=1e-3)


def test_e8_generator_spans_the_even_coordinate_e8_of_the_brute_force():
    """Its rows lie in {p in Z^8 u (Z^8 + 1/2) : sum even} and det is 1, that lattice's volume."""
    rows = get_lattice("e8").generator
    assert torch.all((rows == torch.round(rows)).all(-1) | (rows - 0.5 == torch.round(rows - 0.5)).all(-1))
    assert torch.all(torch.remainder(rows.sum(-1), 2) == 0)


@pytest.mark.parametrize("name", ["z1", "z3", "z8"])
def test_zn_is_rounding_half_to_even(name):
    lattice = get_lattice(name)
    x = torch.randn(10_000, lattice.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4
    x[:1000] = torch.round(x[:1000]) + 0.5  # every coordinate a tie
    assert torch.equal(lattice.quantize_coords(x), torch.round(x).to(torch.int64))


def test_documented_tie_rule():
    ties = torch.tensor([[-1.5], [-0.5], [0.5], [1.5], [2.5]])
    assert get_lattice("z1").quantize_coords(ties).flatten().tolist() == [-2, 0, 0, 2, 2]
    e8 = get_lattice("e8")
    # (1/4)^8 is at squared distance 1/2 from 0 (in D8) and from (1/2)^8 (in D8 + 1/2): D8 wins.
    quarter = torch.full((8,), 0.25, dtype=torch.float64)
    assert torch.equal(e8.nearest_point(quarter), torch.zeros(8, dtype=torch.float64))
    # e1 rounds to itself, of odd sum: the parity fix moves the first coordinate up, to 2 e1.
    e1 = torch.eye(8, dtype=torch.float64)[0]
    assert torch.equal(e8.nearest_point(e1), 2 * e1)


@pytest.mark.parametrize("name", BRUTE_FORCE_NAMES)
def test_nearest_point_agrees_with_brute_force(name):
    lattice = get_lattice(name)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100_000, lattice.dim, generator=g, dtype=torch.float64) * 3
    x[50_000:] += torch.randint(-10_000, 10_000, (50_000, 1), generator=g)  # far from the origin too
    fast = squared_distance(lattice.nearest_point(x), x)
    exhaustive = brute_force_squared_distances(lattice, x)[:, 0]
    assert torch.allclose(fast, exhaustive, rtol=0, atol=1e-8)
    assert fast.max().item() <= COVERING_RADIUS[name] ** 2 + 1e-9
    assert torch.equal(lattice.quantize_coords(x), lattice.to_coords(lattice.nearest_point(x)))


@pytest.mark.parametrize("name", BRUTE_FORCE_NAMES)
def test_deep_holes_are_at_the_covering_radius(name):
    lattice = get_lattice(name)
    unscaled, scale = DEEP_HOLE[name]
    coords = torch.randint(-50, 50, (100, lattice.dim), generator=torch.Generator().manual_seed(0))
    lattice_points = lattice.from_coords(coords)
    holes = torch.tensor(unscaled, dtype=torch.float64) * scale + lattice_points
    expected = torch.full((len(holes),), COVERING_RADIUS[name] ** 2, dtype=torch.float64)
    assert torch.allclose(brute_force_squared_distances(lattice, holes)[:, 0], expected, atol=1e-9)
    assert torch.allclose(squared_distance(lattice.nearest_point(holes), holes), expected, atol=1e-9)


@pytest.mark.parametrize("name", BRUTE_FORCE_NAMES)
def test_boundary_points_are_resolved_the_same_way_every_time(name):
    lattice = get_lattice(name)
    points = lattice.from_coords(torch.randint(-20, 20, (100, lattice.dim), generator=torch.Generator().manual_seed(1)))
    # Midpoints to the nearest shells (Voronoi-relevant vectors among them) and deep holes: each
    # equidistant from two or more lattice points.
    neighbours = lattice.points_within(1.6)[1:]
    unscaled, scale = DEEP_HOLE[name]
    offsets = torch.cat([0.5 * neighbours, torch.tensor([unscaled], dtype=torch.float64) * scale])
    x = (points[:, None, :] + offsets[None]).reshape(-1, lattice.dim)
    first = lattice.nearest_point(x)
    assert torch.allclose(squared_distance(first, x), brute_force_squared_distances(lattice, x)[:, 0], atol=1e-9)
    assert torch.equal(lattice.nearest_point(x), first)
    permutation = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    assert torch.equal(lattice.nearest_point(x[permutation]), first[permutation])
    assert torch.equal(lattice.nearest_point(x[:7]), first[:7])  # another batch size
    grouped = (len(points), -1, lattice.dim)
    assert torch.equal(lattice.nearest_point(x.reshape(grouped)), first.reshape(grouped))
    assert torch.equal(lattice.from_coords(lattice.quantize_coords(x)), first)


# Number of points of the unscaled lattice within the given squared norm (theta series, SPLAG
# ch. 4): the ball is then taken at unit volume, with the shell on its surface.
THETA_COUNTS = [
    ("z2", 5.0, 1.0, 1 + 4 + 4 + 4 + 8),  # norms 1, 2, 4, 5
    ("a2", 7.0, (math.sqrt(3) / 2) ** -0.5, 1 + 6 + 6 + 6 + 12),  # norms 1, 3, 4, 7
    ("a3*", 3.0, 2 ** (1 / 3), 1 + 8 + 6 + 12 + 24 + 8),  # norms 3/4, 1, 2, 11/4, 3
    ("d4", 6.0, 2 ** (-1 / 4), 1 + 24 + 24 + 96),  # norms 2, 4, 6
    ("e8", 6.0, 1.0, 1 + 240 + 2160 + 6720),  # norms 2, 4, 6
]


@pytest.mark.parametrize("name, squared_norm, scale, count", THETA_COUNTS)
def test_points_within_counts_shells_on_the_sphere(name, squared_norm, scale, count):
    lattice = get_lattice(name)
    radius = math.sqrt(squared_norm) * scale
    assert len(lattice.points_within(radius)) == count
    assert len(lattice.points_within(radius * (1 - 1e-9))) < count  # the outer shell is on the sphere


@pytest.mark.parametrize("name", ["z2", "a2", "a3*", "d4"])
def test_points_within_matches_a_brute_force_count_around_any_center(name):
    lattice = get_lattice(name)
    center = torch.rand(lattice.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 4 - 2
    radius = 3.3
    points = lattice.points_within(radius, center)
    # A coordinate box that holds the ball: |k_j| <= (radius + |center|) |column j of the inverse|.
    column_norms = torch.linalg.norm(torch.linalg.inv(lattice.generator), dim=0)
    reach = (radius + torch.linalg.norm(center).item()) * column_norms.max().item()
    half = math.ceil(reach) + 1
    box = lattice.from_coords(torch.tensor(list(itertools.product(range(-half, half + 1), repeat=lattice.dim))))
    expected = box[torch.linalg.norm(box - center, dim=-1) <= radius]
    assert len(points) == len(expected)
    assert len(torch.unique(lattice.to_coords(points), dim=0)) == len(points)
    assert torch.all(torch.linalg.norm(points - center, dim=-1) <= radius)
    assert torch.equal(lattice.nearest_point(points), points)  # all on the lattice


@pytest.mark.parametrize("name", NAMES)
def test_points_within_order_is_distance_then_coordinates(name):
    lattice = get_lattice(name)
    for center in (None, torch.full((lattice.dim,), 0.3, dtype=torch.float64)):
        points = lattice.points_within(2.2 if lattice.dim == 8 else 3.0, center)
        c = torch.zeros(lattice.dim, dtype=torch.float64) if center is None else center
        coords = lattice.to_coords(points).tolist()
        distances = torch.linalg.norm(points - c, dim=-1).tolist()
        keys = [(round(d, 9), k) for d, k in zip(distances, coords)]
        assert keys == sorted(keys)
        assert torch.equal(points, lattice.points_within(2.2 if lattice.dim == 8 else 3.0, center))


@pytest.mark.parametrize("name", NAMES)
def test_points_within_a_lattice_point_center_is_the_translated_ball(name):
    """Translation by a lattice vector adds the same coordinates everywhere: the order survives."""
    lattice = get_lattice(name)
    shift = torch.arange(lattice.dim) * 7 - 11
    around_origin = lattice.points_within(2.0)
    around_point = lattice.points_within(2.0, center=lattice.from_coords(shift))
    assert torch.equal(lattice.to_coords(around_point), lattice.to_coords(around_origin) + shift)
    assert torch.equal(lattice.points_within(0.0), torch.zeros(1, lattice.dim, dtype=torch.float64))
    assert lattice.points_within(-1.0).shape == (0, lattice.dim)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(BRUTE_FORCE_NAMES),
    x=st.lists(st.floats(-4, 4, allow_nan=False), min_size=8, max_size=8),
    shift=st.lists(st.integers(-1_000_000, 1_000_000), min_size=8, max_size=8),
)
def test_translation_by_a_lattice_vector_moves_the_coordinates(name, x, shift):
    lattice = get_lattice(name)
    x = torch.tensor([x[: lattice.dim]], dtype=torch.float64)
    two_nearest = brute_force_squared_distances(lattice, x, top=2)[0]
    assume(two_nearest[1] - two_nearest[0] > 1e-6)  # away from ties
    k = torch.tensor([shift[: lattice.dim]])
    assert torch.equal(lattice.quantize_coords(x + lattice.from_coords(k)), lattice.quantize_coords(x) + k)


def test_names_aliases_and_errors():
    assert [get_lattice(n).name for n in ("Z1", "z8", "HEX", "a2", "oct", "BCC", "A3*", "D4", "e8")] == \
        ["Z1", "Z8", "A2", "A2", "A3*", "A3*", "A3*", "D4", "E8"]
    for bad in ("leech", "z0", "z9", "a3"):
        with pytest.raises(ValueError, match=r"z1\.\.z8, a2/hex, a3\*/bcc/oct, d4, e8"):
            get_lattice(bad)
    d4 = get_lattice("d4")
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 4\)"):
        d4.nearest_point(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="expected \\(4,\\)"):
        d4.points_within(1.0, center=torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        d4.points_within(math.inf)
    with pytest.raises(ValueError, match="finite"):
        d4.quantize_coords(torch.tensor([[0.0, float("nan"), 0.0, 0.0]]))
