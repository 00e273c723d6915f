"""Lattice tables over factorized learned densities (quant/learned_tables.py), checked against the
Gaussian tables of quant/tables.py with a Gaussian CDF standing in for a learned one."""

import numpy as np
import pytest
from scipy.special import log_ndtr

from vidcodec.entropy.lattice_coder import estimated_table_points
from vidcodec.quant.learned_tables import MAX_TABLE_POINTS, cell_profile, tables_of_cdfs
from vidcodec.quant.tables import TableCache, TableSpec, build_table

SIGMAS = np.array([0.3, 1.0, 2.5, 6.0])


def gaussian_logits(values: np.ndarray) -> np.ndarray:
    """Logits of the CDFs of N(0, sigma^2) for SIGMAS, at values: (4, K)."""
    v = values[None, :] / SIGMAS[:, None]
    return log_ndtr(v) - log_ndtr(-v)


@pytest.mark.parametrize("lattice", ["a2", "a3*"])
def test_the_cell_profile_has_the_cells_volume(lattice):
    edges, half_height = cell_profile(lattice)
    cell = (edges[1] - edges[0]) ** half_height.ndim
    assert 2 * half_height.sum() * cell == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("lattice, tolerance", [("a2", 1e-5), ("a3*", 1e-2)])
def test_gaussian_cdfs_give_the_gaussian_tables(tmp_path, lattice, tolerance):
    """Same points (the same pruning) and probabilities within ``tolerance`` relative (A2's
    reference is quadrature, exact to ~1e-9; A3*'s is quasi-Monte Carlo, good to ~1e-3)."""
    tables = tables_of_cdfs(lattice, gaussian_logits, "gaussian", TableCache(tmp_path))
    dim = 2 if lattice == "a2" else 3
    for sigma, table in zip(SIGMAS, tables):
        # Channels are lattice-coded where the Gaussian coder codes their scale.
        assert (table is not None) == (estimated_table_points(dim, sigma) <= MAX_TABLE_POINTS)
        if table is None:
            continue
        reference = build_table(TableSpec(lattice, float(sigma)))
        assert table.coords.tolist() == reference.coords.tolist()
        large = reference.pmf > 1e-3
        assert np.allclose(table.pmf[large], reference.pmf[large], rtol=tolerance, atol=0)
        assert table.integrated_mass == pytest.approx(1.0, abs=1e-6)


def test_tables_come_from_the_cache_without_the_densities(tmp_path):
    tables_of_cdfs("a2", gaussian_logits, "gaussian", TableCache(tmp_path))

    def unit_masses_only(values):
        if len(values) > 200:
            raise AssertionError("the cache had every table: only the unit masses are needed")
        return gaussian_logits(values)

    again = tables_of_cdfs("a2", unit_masses_only, "gaussian", TableCache(tmp_path))
    assert [t is None for t in again] == [False, False, False, False]


def test_other_lattices_are_refused():
    with pytest.raises(ValueError, match="Hex and Oct"):
        tables_of_cdfs("d4", gaussian_logits, "gaussian")
