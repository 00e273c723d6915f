import math

import pytest
import torch

from vidcodec.quant.golay import golay_codewords
from vidcodec.quant.lattice import NSM_THEORY, NearestPointLattice, normalized_second_moment
from vidcodec.quant.leech import LeechLattice, leech_lattice, minimal_vectors

SQRT8 = math.sqrt(8.0)


@pytest.fixture(scope="module")
def leech() -> LeechLattice:
    return leech_lattice()


def _standard(points: torch.Tensor) -> torch.Tensor:
    """Unit-volume points -> standard integer coordinates (minimal norm 32), int64."""
    scaled = points * SQRT8
    rounded = torch.round(scaled)
    assert torch.allclose(scaled, rounded, atol=1e-9)
    return rounded.to(torch.int64)


def on_leech_by_definition(points_std: torch.Tensor) -> torch.Tensor:
    """(N, 24) int64 -> (N,) bool, straight from the Golay construction (SPLAG ch. 4 sec. 11):
    all coordinates even with x/2 mod 2 a codeword and sum = 0 mod 8, or all odd with (x-1)/2 mod 2
    a codeword and sum = 4 mod 8. Independent of the decoder's block-and-glue tables."""
    codewords = {int(sum(b << i for i, b in enumerate(w))) for w in golay_codewords().tolist()}
    bit_weights = 2 ** torch.arange(24)
    parity = torch.remainder(points_std, 2)
    all_even, all_odd = (parity == 0).all(-1), (parity == 1).all(-1)
    pattern = torch.where(all_even.unsqueeze(-1), points_std // 2, (points_std - 1) // 2)
    word = (torch.remainder(pattern, 2) * bit_weights).sum(-1)
    in_code = torch.tensor([w in codewords for w in word.tolist()], dtype=torch.bool)
    total = torch.remainder(points_std.sum(-1), 8)
    return in_code & ((all_even & (total == 0)) | (all_odd & (total == 4)))


def reference_nearest_squared_distance(x: torch.Tensor) -> torch.Tensor:
    """Exhaustive reference, by a different decomposition than the decoder's: the lattice is the
    union of the 8192 cosets 2c + 4 D24 and 1 + 2c + 4 (D24 + e1) over all codewords c; round into
    each (24-coordinate rounding with the parity fix) and keep the smallest squared distance.
    x (N, 24) unit-volume float64 -> (N,)."""
    words = golay_codewords().to(torch.float64)
    best = []
    for chunk in (x * SQRT8).split(16):
        y = chunk.unsqueeze(1)  # (n, 1, 24)
        per_type = []
        for offset, target_parity in ((0.0, 0), (1.0, 1)):
            shift = offset + 2.0 * words  # (4096, 24)
            u = (y - shift) / 4.0
            z = torch.round(u)
            wrong = torch.remainder(z.sum(-1), 2) != target_parity
            # Wagner: move the coordinate of largest rounding error to its other neighbour.
            error = (u - z).abs()
            worst = error.amax(-1)
            squared = (16.0 * (u - z) ** 2).sum(-1)
            fixed = squared + 16.0 * ((1.0 - worst) ** 2 - worst**2)
            per_type.append(torch.where(wrong, fixed, squared).amin(-1))
        best.append(torch.minimum(*per_type) / 8.0)
    return torch.cat(best)


def test_generator_is_even_unimodular_and_on_the_lattice(leech):
    g = leech.generator
    assert g.shape == (24, 24) and g.dtype == torch.float64
    assert abs(torch.linalg.det(g).item()) == pytest.approx(1.0, abs=1e-9)
    gram = g @ g.T
    assert torch.allclose(gram, torch.round(gram), atol=1e-9)
    assert (torch.remainder(torch.round(gram.diagonal()), 2) == 0).all()  # even: no odd norms
    assert on_leech_by_definition(_standard(g)).all()


def test_satisfies_the_protocol_used_by_normalized_second_moment(leech):
    as_protocol: NearestPointLattice = leech
    assert as_protocol.name == "Leech" and as_protocol.dim == 24
    assert leech.nsm_theory == NSM_THEORY["Leech"] == pytest.approx(0.06577, abs=1e-5)


def test_minimal_vectors_form_the_first_shell():
    vectors = minimal_vectors()
    assert vectors.shape == (196_560, 24)
    assert len(torch.unique(vectors, dim=0)) == 196_560
    assert torch.allclose((vectors**2).sum(-1), torch.full((196_560,), 4.0, dtype=torch.float64))
    assert on_leech_by_definition(_standard(vectors)).all()


def test_a_sample_of_minimal_vectors_decodes_to_itself(leech):
    vectors = minimal_vectors()[::23]  # all three shapes, 8,546 vectors
    assert torch.equal(leech.nearest_point(vectors), vectors)


@pytest.mark.slow
@pytest.mark.parametrize("part", range(4))
def test_every_minimal_vector_decodes_to_itself(leech, part):
    vectors = minimal_vectors()[part::4]
    assert torch.equal(leech.nearest_point(vectors), vectors)


def test_perturbations_within_the_packing_radius_decode_back(leech):
    """The minimum distance is 2, so a point within 1 of a lattice point p has p as nearest."""
    g = torch.Generator().manual_seed(1)
    coords = torch.randint(-50, 51, (3000, 24), generator=g)
    points = leech.from_coords(coords)
    direction = torch.randn(3000, 24, generator=g, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    radius = torch.rand(3000, 1, generator=g, dtype=torch.float64) * 0.999
    radius[:1000] = 0.999  # right up to the boundary
    assert torch.equal(leech.quantize_coords(points + radius * direction), coords)
    # Halfway towards a minimal-vector neighbour, less a hair: still the own point.
    neighbours = minimal_vectors()[torch.randint(0, 196_560, (3000,), generator=g)]
    assert torch.equal(leech.quantize_coords(points + 0.4999 * neighbours), coords)
    assert torch.equal(leech.quantize_coords(points + 0.5001 * neighbours), leech.to_coords(points + neighbours))


def test_matches_the_exhaustive_coset_search(leech):
    g = torch.Generator().manual_seed(2)
    wide = torch.randn(120, 24, generator=g, dtype=torch.float64) * 3.0
    # Near lattice points, and near the middle of pairs of points (where decoders go wrong).
    base = leech.from_coords(torch.randint(-20, 21, (60, 24), generator=g))
    near = base + 0.6 * torch.randn(60, 24, generator=g, dtype=torch.float64)
    middle = base + 0.5 * minimal_vectors()[torch.randint(0, 196_560, (60,), generator=g)]
    middle = middle + 0.05 * torch.randn(60, 24, generator=g, dtype=torch.float64)
    x = torch.cat([wide, near, middle])
    q = leech.nearest_point(x)
    assert on_leech_by_definition(_standard(q)).all()
    decoded = ((x - q) ** 2).sum(-1)
    reference = reference_nearest_squared_distance(x)
    assert torch.allclose(decoded, reference, rtol=0, atol=1e-9)
    assert decoded.max() <= 2.0 + 1e-9  # covering radius sqrt(2)


def test_reference_search_can_tell_a_wrong_point(leech):
    """Guards the test above: a lattice point that is not the nearest gives a larger distance."""
    x = torch.randn(20, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    wrong = leech.nearest_point(x) + minimal_vectors()[:20]
    assert (((x - wrong) ** 2).sum(-1) > reference_nearest_squared_distance(x) + 1e-6).all()


def test_coordinates_round_trip_and_nearest_point_goes_through_them(leech):
    g = torch.Generator().manual_seed(4)
    coords = torch.randint(-1000, 1001, (500, 24), generator=g)
    points = leech.from_coords(coords)
    assert torch.equal(leech.to_coords(points), coords)
    assert torch.equal(leech.quantize_coords(points), coords)
    x = torch.randn(2, 5, 24, generator=g, dtype=torch.float64) * 10
    k = leech.quantize_coords(x)
    assert k.shape == (2, 5, 24) and k.dtype == torch.int64
    assert torch.equal(leech.nearest_point(x), leech.from_coords(k))
    assert leech.nearest_point(x.float()).dtype == torch.float32


def test_result_does_not_depend_on_the_batch(leech):
    x = torch.randn(300, 24, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2
    together = leech.quantize_coords(x)
    one_by_one = torch.cat([leech.quantize_coords(row.unsqueeze(0)) for row in x[:40]])
    assert torch.equal(together[:40], one_by_one)
    assert torch.equal(leech.quantize_coords(x[7:300:3]), together[7:300:3])


def test_bad_input_is_refused(leech):
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 24\)"):
        leech.nearest_point(torch.zeros(3, 8))
    with pytest.raises(ValueError, match="finite"):
        leech.quantize_coords(torch.full((1, 24), float("nan")))
    with pytest.raises(ValueError, match="not on the Leech lattice"):
        leech.to_coords(torch.full((1, 24), 1.0 / SQRT8))  # 1^24 is odd with sum 24 = 0 mod 8
    assert leech.quantize_coords(torch.zeros(0, 24)).shape == (0, 24)


def test_to_cell_maps_into_the_voronoi_cell_of_the_origin(leech):
    u = torch.rand(2000, 24, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    cell = leech.to_cell(u)
    assert (cell.norm(dim=-1) <= math.sqrt(2.0) + 1e-9).all()
    assert (leech.quantize_coords(cell) == 0).all()


def test_normalized_second_moment_within_one_percent(leech):
    measured = normalized_second_moment(leech, num_samples=1 << 13, seed=1)
    assert measured == pytest.approx(0.06577, rel=0.01)
