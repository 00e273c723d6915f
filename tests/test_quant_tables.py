from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.tables import TableCache, TableSpec, build_table, cell_probabilities


def test_z1_table_is_the_discretized_gaussian():
    table = build_table(TableSpec("z1", 1.3))
    p = table.coords[:, 0].numpy().astype(float)
    assert np.allclose(table.pmf, ndtr((p + 0.5) / 1.3) - ndtr((p - 0.5) / 1.3), rtol=1e-12)
    assert table.pmf.min() >= 1e-7
    assert table.pmf.sum() + table.escape_mass == pytest.approx(1.0, abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("lattice_name, sigma, tolerance", [("a2", 0.3, 1e-9), ("a2", 1.0, 1e-9), ("a2", 2.5, 1e-9),
                                                             ("a3*", 1.0, 2e-6), ("a3*", 0.6, 2e-6)])
def test_cells_integrate_to_one_over_a_wide_enumeration(lattice_name, sigma, tolerance):
    lattice = get_lattice(lattice_name)
    points = lattice.points_within(9 * sigma + 1.5)
    assert cell_probabilities(lattice, points, sigma).sum() == pytest.approx(1.0, abs=tolerance)


@pytest.mark.parametrize("sigma", [0.4, 1.1])
def test_hexagon_quadrature_agrees_with_quasi_monte_carlo(sigma):
    """Two independent integrations of the A2 cells: erf + Gauss-Legendre vs Sobol points."""
    from vidcodec.quant.tables import _qmc_probabilities

    lattice = get_lattice("a2")
    points = lattice.points_within(2.0 * sigma + 1)
    quadrature = cell_probabilities(lattice, points, sigma)
    sobol = _qmc_probabilities(lattice, points, sigma, log2_points=16, seed=0)
    assert np.allclose(quadrature, sobol, rtol=2e-3, atol=1e-7)


def test_tables_are_deterministic_and_pruned():
    first, second = build_table(TableSpec("a3*", 0.8)), build_table(TableSpec("a3*", 0.8))
    assert first.pmf.tobytes() == second.pmf.tobytes() and torch.equal(first.coords, second.coords)
    assert first.pmf.min() >= 1e-7
    # the table is ordered by distance from the origin: the origin is symbol 0
    assert first.coords[0].tolist() == [0, 0, 0] and first.pmf.argmax() == 0


def test_symbols_and_escapes():
    table = build_table(TableSpec("a2", 0.5))
    inside = table.coords[[0, 3, 5]]
    far = torch.tensor([[1000, -1000]])
    assert table.symbols_of(inside).tolist() == [0, 3, 5]
    assert table.symbols_of(far).tolist() == [-1]
    assert 0 < table.escape_mass < 1e-5


def test_cache_returns_identical_tables_and_rebuilds_damaged_files(tmp_path):
    spec = TableSpec("a2", 0.9)
    built = TableCache(tmp_path).get(spec)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and spec.key() in files[0].name
    loaded = TableCache(tmp_path).get(spec)
    assert loaded.pmf.tobytes() == built.pmf.tobytes() and torch.equal(loaded.coords, built.coords)
    files[0].write_bytes(b"garbage")
    rebuilt = TableCache(tmp_path).get(spec)
    assert rebuilt.pmf.tobytes() == built.pmf.tobytes()
    assert TableSpec("a2", 0.9).key() != TableSpec("a2", 0.9000001).key()


def test_symbol_lookup_agrees_with_a_dictionary():
    table = build_table(TableSpec("a3*", 0.7))
    lookup = {tuple(row): i for i, row in enumerate(table.coords.tolist())}
    queries = torch.randint(-12, 12, (5000, 3))
    expected = [lookup.get(tuple(row), -1) for row in queries.tolist()]
    assert table.symbols_of(queries).tolist() == expected
    assert table.symbols_of(queries.reshape(50, 100, 3)).shape == (50, 100)


def test_the_test_session_builds_tables_in_its_own_directory():
    """conftest.py: tests never read or fill the machine's cache (~/.cache/vidcodec)."""
    directory = TableCache().directory
    assert Path.home() / ".cache" not in directory.parents and "vidcodec-test-cache-" in str(directory)
