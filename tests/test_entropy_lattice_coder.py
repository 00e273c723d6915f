import pytest
import torch
from compressai.entropy_models import GaussianConditional
from compressai.models.base import get_scale_table

from vidcodec.entropy.lattice_coder import LatticeLatentCoder, estimated_table_points
from vidcodec.quant.tables import TableCache


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tables")  # shared: tables are built once for the module


@pytest.fixture(scope="module")
def gaussian_conditional():
    gc = GaussianConditional(None)
    gc.update_scale_table(get_scale_table(), force=True)
    return gc


def latent(seed: int, shape=(1, 16, 12, 20), sigma_index_range=(0, 30)):
    g = torch.Generator().manual_seed(seed)
    scale_indexes = torch.randint(*sigma_index_range, shape, generator=g).to(torch.int32)
    sigma = get_scale_table()[scale_indexes.long()]
    mu = torch.randn(shape, generator=g) * 3
    y = mu + torch.randn(shape, generator=g) * sigma
    return y, mu, scale_indexes


@pytest.mark.slow
@pytest.mark.parametrize("lattice_name", ["a2", "a3*"])
def test_round_trip_is_exact_and_matches_the_lattice(lattice_name, gaussian_conditional, table_dir):
    coder = LatticeLatentCoder(lattice_name, gaussian_conditional, TableCache(table_dir))
    y, mu, scale_indexes = latent(0)
    data, y_hat, digest = coder.encode(y, mu, scale_indexes)
    decoded, decoded_digest = LatticeLatentCoder(lattice_name, gaussian_conditional, TableCache(table_dir)).decode(
        data, mu, scale_indexes)
    assert torch.equal(decoded, y_hat) and digest == decoded_digest
    # quantization error is bounded by the covering radius (< 1 for unit-volume lattices here)
    assert (y_hat - y).abs().max() < 1.0


def test_extreme_outliers_go_through_the_escape(gaussian_conditional, table_dir):
    coder = LatticeLatentCoder("a3*", gaussian_conditional, TableCache(table_dir))
    y, mu, scale_indexes = latent(1)
    y = y.clone()
    y.view(-1)[::50] += 1e4  # far outside every table
    y.view(-1)[7] -= 3e6
    data, y_hat, _ = coder.encode(y, mu, scale_indexes)
    decoded, _ = coder.decode(data, mu, scale_indexes)
    assert torch.equal(decoded, y_hat)
    assert (y_hat - y).abs().max() < 1.0  # nothing clipped


def test_coded_bits_are_within_one_percent_of_the_ideal(gaussian_conditional, table_dir):
    """Coded size is within 1% of the ideal -log2 P of the table symbols (measured: +0.1%)."""
    coder = LatticeLatentCoder("a2", gaussian_conditional, TableCache(table_dir))
    y, mu, scale_indexes = latent(2, shape=(1, 64, 32, 32), sigma_index_range=(10, 25))
    data, _, _ = coder.encode(y, mu, scale_indexes)
    tuples, tuple_scales, scalar_positions, tables = coder._plan(scale_indexes)
    assert len(scalar_positions) < 64  # leftovers only
    residual = (y - mu).reshape(-1).double()
    coords = coder.lattice.quantize_coords(residual[tuples])
    ideal_bits = 0.0
    for scale_index in tables.lattice_table_of:
        table = coder._lattice_cdf(scale_index)[0]
        rows = tuple_scales == scale_index
        symbols = table.symbols_of(coords[rows])
        assert (symbols >= 0).all()
        ideal_bits += float(-torch.log2(torch.from_numpy(table.pmf)[symbols]).sum())
    assert 8 * len(data) == pytest.approx(ideal_bits, rel=0.01)


def test_large_scales_fall_back_to_scalar_coding(gaussian_conditional):
    coder = LatticeLatentCoder("a3*", gaussian_conditional)
    lattice_indexes = coder.lattice_scale_indexes()
    assert lattice_indexes == list(range(len(lattice_indexes)))  # a prefix of the increasing scale table
    assert 0 < len(lattice_indexes) < 64
    assert estimated_table_points(3, float(get_scale_table()[-1])) > 4096


def test_the_frame_wide_table_index_agrees_with_each_table(gaussian_conditional, table_dir):
    coder = LatticeLatentCoder("a2", gaussian_conditional, TableCache(table_dir))
    scales = list(range(0, 20, 3))
    tables = {s: coder._lattice_cdf(s)[0] for s in scales}  # loads them into the coder's index
    g = torch.Generator().manual_seed(3)
    tuple_scales = torch.tensor(scales)[torch.randint(len(scales), (4000,), generator=g)]
    coords = torch.randint(-12, 13, (4000, 2), generator=g)  # some inside each table, some escapes
    symbols, escaped = coder._index.symbols(coords, tuple_scales)
    for s, table in tables.items():
        rows = tuple_scales == s
        found = table.symbols_of(coords[rows])
        assert torch.equal(symbols[rows], torch.where(found >= 0, found, table.num_points))
        assert torch.equal(escaped[rows], found < 0)
    assert escaped.any() and not escaped.all()
    points, decoded_escaped = coder._index.points(symbols, tuple_scales)
    assert torch.equal(decoded_escaped, escaped) and torch.equal(points[~escaped], coords[~escaped])
    # Symbols a damaged stream may hold (negative, beyond the table) are escapes, not crashes.
    wild = torch.randint(-5, 5000, (4000,), generator=g)
    points, wild_escaped = coder._index.points(wild, tuple_scales)
    sizes = torch.tensor([tables[int(s)].num_points for s in tuple_scales])
    assert torch.equal(wild_escaped, (wild < 0) | (wild >= sizes)) and (points[wild_escaped] == 0).all()


def test_the_header_names_the_scope_and_a_digest_of_the_table_parameters(monkeypatch):
    from dataclasses import replace

    from vidcodec.bitstream.errors import BitstreamError
    from vidcodec.bitstream.syntax import ModelRef, SequenceHeader
    from vidcodec.entropy import lattice_coder
    from vidcodec.pipeline import stream_tools
    from vidcodec.quant import tables as quant_tables

    params = lattice_coder.coding_parameters("a3*", "intra")
    assert len(params) == 9 and lattice_coder.coding_scope(params) == "intra"
    assert params != lattice_coder.coding_parameters("a2", "intra")  # the lattice is in the digest
    ref = ModelRef("ssf-small", 3, bytes(16))
    header = SequenceHeader(width=64, height=64, bit_depth=8, fps=30.0, num_frames=1, intra_period=1,
                            intra_model=ref, inter_model=ref, pad_multiple=16, pad_margin=8, quantizer="oct",
                            quant_params=params)
    assert stream_tools(header).quant_roles == frozenset({"intra"})
    with pytest.raises(BitstreamError, match="lattice table parameters"):
        stream_tools(replace(header, quant_params=bytes([9]) + params[1:]))  # no such scope
    monkeypatch.setattr(quant_tables, "MAX_TABLE_POINTS", quant_tables.MAX_TABLE_POINTS + 1)
    with pytest.raises(BitstreamError, match="lattice table parameters"):  # this decoder's tables would differ
        stream_tools(header)
