"""Entropy coding of a latent with lattice vector quantization of its residual r = y - mu.

Latents are grouped into v-tuples by scale index (quant/grouping.py). Each tuple is quantized to
the nearest point of the unit-volume lattice and coded as the point's symbol in the PMF table of
its scale (quant/tables.py), with compressai's rANS. Under a factorized learned prior the "scale
index" of a latent is its channel, and the tables integrate the channel's learned density
(quant/learned_tables.py); the rest is the same. A point missing from the table (pruned as
improbable) is coded as the escape symbol followed by its integer lattice coordinates, each with
a wide discretized-Gaussian fallback model (compressai's bypass coding covers any integer beyond
that model): every input stays codable, nothing is clipped.

Scales whose table would exceed MAX_TABLE_POINTS symbols (quant/tables.py; an estimate from the ball of radius
where cells drop below the pruning threshold) are not lattice-coded: with 16-bit rANS precision
every symbol costs at least 2^-16 of the probability mass, so huge tables waste rate. Their latents
and the leftovers of the grouping are coded by scalar rounding with the entropy model's own
tables (the Gaussian conditional's, or the bottleneck's), exactly as the baseline. The decoder knows
every scale index before decoding y, so it rebuilds the same grouping, tables and choices.

Stream layout (one rANS string): tuple symbols, then scalar symbols, then escape coordinates; a
latent coded position by position (entropy/autoregressive_coder.py) has this layout per position.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np
import torch
from compressai._CXX import pmf_to_quantized_cdf
from compressai.ans import BufferedRansEncoder, RansDecoder
from compressai.entropy_models import GaussianConditional

from vidcodec.quant.grouping import group_by_scale, sorted_positions
from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.learned_tables import tables_of_cdfs
from vidcodec.quant.tables import MAX_TABLE_POINTS, PRUNE_PROBABILITY, TableCache, TableSpec

CDF_PRECISION_BITS = 16
# Smallest escape probability given to a table: escapes must stay codable even where the
# integrated pruned mass underflows.
MIN_ESCAPE_PROBABILITY = 1e-6
FALLBACK_HALF_WIDTH = 64  # coordinates in [-64, 64] use the fallback table; beyond, rANS bypass


# Lattice scopes as one byte of the sequence header (tools.QUANT_SCOPES); append only: the position
# is the stream's code.
SCOPE_CODES = ("residual", "residual+motion", "all", "intra")
TABLE_DIGEST_BYTES = 8


def table_parameters(lattice_name: str) -> bytes:
    """Everything the decoder's tables depend on, canonical JSON (hashed into the sequence header)."""
    from vidcodec.quant import tables

    return json.dumps({
        "lattice": get_lattice(lattice_name).name,
        "table_format": tables.TABLE_FORMAT_VERSION,
        "prune": tables.PRUNE_PROBABILITY,
        "qmc_log2_points": tables.QMC_LOG2_POINTS,
        "qmc_seed": tables.QMC_SEED,
        "gauss_legendre_nodes": tables.GAUSS_LEGENDRE_NODES,
        "max_table_points": tables.MAX_TABLE_POINTS,
        "min_escape": MIN_ESCAPE_PROBABILITY,
        "fallback_half_width": FALLBACK_HALF_WIDTH,
        "cdf_precision_bits": CDF_PRECISION_BITS,
    }, sort_keys=True, separators=(",", ":")).encode()


def coding_parameters(lattice_name: str, scope: str = "residual") -> bytes:
    """What the sequence header stores for a lattice-coded stream, 9 bytes: the scope (which
    latents are lattice-coded) as one byte, and an 8-byte digest of ``table_parameters``, so that a
    decoder whose tables would differ refuses the stream rather than decoding garbage. (Until syntax
    version 4 the JSON itself was stored: 216 bytes, more than the tools save on a small picture.)"""
    digest = hashlib.blake2b(table_parameters(lattice_name), digest_size=TABLE_DIGEST_BYTES).digest()
    return bytes([SCOPE_CODES.index(scope)]) + digest


def coding_scope(quant_params: bytes) -> str | None:
    """The scope of a stream's ``coding_parameters``; None when they are not of that form."""
    if len(quant_params) != 1 + TABLE_DIGEST_BYTES or quant_params[0] >= len(SCOPE_CODES):
        return None
    return SCOPE_CODES[quant_params[0]]


def estimated_table_points(dim: int, sigma: float, prune: float = PRUNE_PROBABILITY) -> float:
    """Points of a unit-volume lattice in the ball where cells can exceed ``prune``; infinite when
    no cell can (a table would be empty and every tuple an escape)."""
    peak = (2 * math.pi * sigma**2) ** (-dim / 2)
    if peak <= prune:
        return math.inf
    radius = sigma * math.sqrt(2 * math.log(peak / prune)) + 1.0
    return math.pi ** (dim / 2) / math.gamma(dim / 2 + 1) * radius**dim


def lattice_coded_scales(dim: int, scale_table: list[float]) -> list[int]:
    """Indexes of the scales whose tuples a lattice of dimension ``dim`` codes: those whose table
    stays within MAX_TABLE_POINTS (shared with lattice-in-the-loop training)."""
    return [k for k, sigma in enumerate(scale_table) if estimated_table_points(dim, sigma) <= MAX_TABLE_POINTS]


def lattice_tuples(scale_indexes: torch.Tensor, dim: int, scale_table: list[float]):
    """(tuples (T, dim), their scale indexes (T,), scalar positions (S,)) of one picture's latents,
    positions into scale_indexes.reshape(-1): the grouping of the coder, shared with lattice training."""
    lattice_ok = torch.zeros(len(scale_table), dtype=torch.bool)
    lattice_ok[lattice_coded_scales(dim, scale_table)] = True
    return tuples_where(scale_indexes, dim, lattice_ok)


def tuples_where(scale_indexes: torch.Tensor, dim: int, lattice_ok: torch.Tensor):
    """lattice_tuples with the lattice-coded indexes given as a mask over all indexes."""
    flat_scales = scale_indexes.reshape(-1).to(torch.int64)
    # Non-eligible latents get a sentinel scale so that grouping never mixes them in tuples.
    grouping = group_by_scale(torch.where(lattice_ok[flat_scales], flat_scales, -1), dim)
    keep = grouping.tuple_scale_indexes >= 0
    scalar_positions = torch.from_numpy(sorted_positions(
        torch.cat([grouping.tuples[~keep].reshape(-1), grouping.leftovers]).numpy(), len(flat_scales)))
    return grouping.tuples[keep], grouping.tuple_scale_indexes[keep], scalar_positions


@functools.lru_cache(maxsize=1)
def _fallback_cdf() -> list[int]:
    """Model of escaped coordinates: a wide discretized Laplacian-like table over
    [-FALLBACK_HALF_WIDTH, FALLBACK_HALF_WIDTH], compressai's bypass beyond."""
    values = torch.arange(-FALLBACK_HALF_WIDTH, FALLBACK_HALF_WIDTH + 1, dtype=torch.float64)
    fallback = torch.exp(-values.abs() / 8.0)
    fallback = torch.cat([fallback / fallback.sum() * (1 - 1e-3), torch.tensor([1e-3], dtype=torch.float64)])
    return pmf_to_quantized_cdf(fallback.tolist(), CDF_PRECISION_BITS)


class _TableIndex:
    """Every lattice table a coder has loaded, concatenated, so that all tuples of a frame are
    looked up at once whatever their scales (point -> symbol for the encoder, symbol -> point for
    the decoder) instead of scale by scale: per frame, a few tensor operations over all tuples.

    Per table (a row, ``slot[scale_index]``): the lowest coordinates of its points, the extent and
    strides of the dense box over them (LatticeTable.symbols_of), where its box starts in ``dense``
    and its points in ``coords``, and its number of points (the escape symbol)."""

    def __init__(self, num_scales: int, dim: int) -> None:
        self.slot = torch.full((num_scales,), -1, dtype=torch.int64)
        self.low = torch.zeros(0, dim, dtype=torch.int64)
        self.extent = torch.zeros(0, dim, dtype=torch.int64)
        self.strides = torch.zeros(0, dim, dtype=torch.int64)
        self.dense_base = torch.zeros(0, dtype=torch.int64)
        self.coords_base = torch.zeros(0, dtype=torch.int64)
        self.num_points = torch.zeros(0, dtype=torch.int64)
        self.dense = torch.zeros(0, dtype=torch.int64)
        self.coords = torch.zeros(0, dim, dtype=torch.int64)

    def add(self, scale_index: int, table) -> None:
        dim = self.low.shape[1]
        if table.num_points:
            low, strides, dense = table._dense_lookup
            extent = table._extent
        else:  # an empty table: every point is outside its (empty) box
            low = strides = extent = torch.zeros(dim, dtype=torch.int64)
            dense = torch.zeros(0, dtype=torch.int64)
        self.slot[scale_index] = len(self.num_points)
        self.low = torch.cat([self.low, low[None]])
        self.extent = torch.cat([self.extent, extent[None]])
        self.strides = torch.cat([self.strides, strides[None]])
        self.dense_base = torch.cat([self.dense_base, torch.tensor([len(self.dense)])])
        self.coords_base = torch.cat([self.coords_base, torch.tensor([len(self.coords)])])
        self.num_points = torch.cat([self.num_points, torch.tensor([table.num_points])])
        self.dense = torch.cat([self.dense, dense])
        self.coords = torch.cat([self.coords, table.coords.reshape(-1, dim).to(torch.int64)])

    def symbols(self, coords: torch.Tensor, scale_indexes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(symbol of each point (T,), escaped (T,) bool) for points (T, dim) of tuples of these
        scales; a point outside its table gets the escape symbol, the table's size."""
        rows = self.slot[scale_indexes]
        offset = coords - self.low[rows]
        inside = ((offset >= 0) & (offset < self.extent[rows])).all(dim=-1)
        where = torch.where(inside, self.dense_base[rows] + (offset * self.strides[rows]).sum(-1), 0)
        found = torch.where(inside, self.dense[where] if len(self.dense) else torch.zeros_like(where), -1)
        escaped = found < 0
        return torch.where(escaped, self.num_points[rows], found), escaped

    def points(self, symbols: torch.Tensor, scale_indexes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(points (T, dim), escaped (T,) bool) of decoded symbols; a corrupted stream can give any
        symbol: everything outside 0..size-1 is an escape (its point is then all zeros)."""
        rows = self.slot[scale_indexes]
        inside = (symbols >= 0) & (symbols < self.num_points[rows])
        where = torch.where(inside, self.coords_base[rows] + symbols, 0)
        points = self.coords[where] if len(self.coords) else torch.zeros(len(symbols), self.coords.shape[1],
                                                                          dtype=torch.int64)
        return torch.where(inside[:, None], points, 0), ~inside


@dataclass
class _CodingTables:
    """The CDF list handed to rANS and where each kind of table starts in it."""

    cdfs: list[list[int]]
    cdf_lengths: list[int]
    offsets: list[int]
    lattice_table_of: dict[int, int]  # scale index -> position of its lattice table in cdfs
    lattice_table_ids: torch.Tensor  # the same as a tensor over all scale indexes (-1: not in use)
    fallback_index: int
    num_scalar_tables: int
    digest: bytes  # hash of every CDF in use (part of the desync guard)


class GaussianTables:
    """The lattice tables of a GaussianConditional's scales (quant/tables.py); index = scale index."""

    def __init__(self, lattice_name: str, gaussian_conditional, cache: TableCache) -> None:
        self.lattice_name, self.cache = lattice_name, cache
        self.scale_table = [float(s) for s in gaussian_conditional.scale_table.tolist()]
        self.num_indexes = len(self.scale_table)
        self.coded_indexes = lattice_coded_scales(get_lattice(lattice_name).dim, self.scale_table)

    def table(self, index: int):
        return self.cache.get(TableSpec(self.lattice_name, self.scale_table[index]))


class LearnedDensityTables:
    """The lattice tables of an EntropyBottleneck's channels (quant/learned_tables.py); index = channel."""

    def __init__(self, lattice_name: str, entropy_bottleneck, cache: TableCache) -> None:
        eb = entropy_bottleneck
        digest = hashlib.sha256()
        for name, tensor in sorted(eb.state_dict().items()):
            digest.update(name.encode() + tensor.detach().contiguous().numpy().tobytes())

        def logits_of(values):
            medians = eb._get_medians().detach().reshape(-1, 1, 1)
            values = torch.from_numpy(values).to(torch.float32)
            with torch.no_grad():
                return torch.cat([eb._logits_cumulative(medians + chunk.reshape(1, 1, -1), stop_gradient=True)[:, 0, :]
                                  for chunk in values.split(1 << 15)], dim=-1).to(torch.float64).numpy()

        self.tables = tables_of_cdfs(lattice_name, logits_of, digest.hexdigest(), cache)
        self.num_indexes = len(self.tables)
        self.coded_indexes = [c for c, table in enumerate(self.tables) if table is not None]

    def table(self, index: int):
        return self.tables[index]


class LatticeLatentCoder:
    """Codes a residual latent with lattice VQ. ``entropy_model``: the compressai model whose own
    tables code the scalar latents and whose densities the lattice tables integrate: a
    GaussianConditional (index = scale index) or an EntropyBottleneck (index = channel)."""

    def __init__(self, lattice_name: str, entropy_model, cache: TableCache | None = None) -> None:
        self.lattice = get_lattice(lattice_name)
        self.lattice_name = lattice_name
        self.entropy_model = entropy_model
        self.cache = cache or TableCache()
        gaussian = isinstance(entropy_model, GaussianConditional)
        self.tables = (GaussianTables if gaussian else LearnedDensityTables)(lattice_name, entropy_model, self.cache)
        self._coded_mask = torch.zeros(self.tables.num_indexes, dtype=torch.bool)
        self._coded_mask[self.tables.coded_indexes] = True
        self._scale_cdfs: dict[int, tuple[object, list[int]]] = {}
        self._index = _TableIndex(self.tables.num_indexes, self.lattice.dim)
        self._last_plan = None

    def lattice_scale_indexes(self) -> list[int]:
        """Indexes whose tuples are lattice-coded (the rest is scalar)."""
        return list(self.tables.coded_indexes)

    def grouping(self, scale_indexes: torch.Tensor):
        """(tuples (T, dim), their indexes (T,), scalar positions (S,)) of latents with these indexes."""
        return tuples_where(scale_indexes, self.lattice.dim, self._coded_mask)

    @functools.cached_property
    def _scalar_cdfs(self) -> tuple[list[list[int]], list[int], list[int]]:
        """The entropy model's own CDF tables as rANS wants them (once per coder: slow to list)."""
        model = self.entropy_model
        cdfs = [list(map(int, row[:length])) for row, length in zip(model._quantized_cdf.tolist(),
                                                                     model._cdf_length.tolist())]
        lengths = [int(v) for v in model._cdf_length.tolist()]
        offsets = [int(v) for v in model._offset.tolist()]
        return cdfs, lengths, offsets

    def _lattice_cdf(self, scale_index: int) -> tuple[object, list[int]]:
        """(LatticeTable, quantized CDF with the escape symbol last) of one scale, built once."""
        if scale_index not in self._scale_cdfs:
            table = self.tables.table(scale_index)
            escape = max(table.escape_mass, MIN_ESCAPE_PROBABILITY)
            pmf = torch.tensor(list(table.pmf) + [escape], dtype=torch.float64)
            self._scale_cdfs[scale_index] = (table, pmf_to_quantized_cdf((pmf / pmf.sum()).tolist(),
                                                                         CDF_PRECISION_BITS))
            self._index.add(scale_index, table)
        return self._scale_cdfs[scale_index]

    def _coding_tables(self, used: tuple[int, ...]) -> _CodingTables:
        # The set of scales in use changes from frame to frame: the per-scale parts are cached,
        # only the list handed to rANS is assembled per frame.
        scalar_cdfs, scalar_lengths, scalar_offsets = self._scalar_cdfs
        cdfs, lengths, offsets = list(scalar_cdfs), list(scalar_lengths), list(scalar_offsets)
        lattice_table_of = {}
        for scale_index in used:
            cdf = self._lattice_cdf(scale_index)[1]
            lattice_table_of[scale_index] = len(cdfs)
            cdfs.append(cdf)
            lengths.append(len(cdf))
            offsets.append(0)
        fallback_cdf = _fallback_cdf()
        fallback_index = len(cdfs)
        cdfs.append(fallback_cdf)
        lengths.append(len(fallback_cdf))
        offsets.append(-FALLBACK_HALF_WIDTH)
        digest = hashlib.blake2b(digest_size=8)
        for cdf in cdfs[len(scalar_cdfs):]:
            digest.update(np.asarray(cdf, dtype=np.int32).tobytes())
        lattice_table_ids = torch.full((self.tables.num_indexes,), -1, dtype=torch.int64)
        lattice_table_ids[list(lattice_table_of)] = torch.tensor(list(lattice_table_of.values()), dtype=torch.int64)
        return _CodingTables(cdfs, lengths, offsets, lattice_table_of, lattice_table_ids,
                             fallback_index, len(scalar_cdfs), digest.digest())

    def _plan(self, scale_indexes: torch.Tensor):
        """Grouping restricted to lattice-coded scales, scalar positions, and the tables in use.

        The decoder asks twice per frame (desync check, then decoding): the last plan is kept,
        keyed by the scale indexes' bytes."""
        key = hashlib.blake2b(scale_indexes.to(torch.int32).contiguous().numpy().tobytes(), digest_size=16).digest()
        key += str(tuple(scale_indexes.shape)).encode()
        if self._last_plan is not None and self._last_plan[0] == key:
            return self._last_plan[1]
        plan = self._make_plan(scale_indexes)
        self._last_plan = (key, plan)
        return plan

    def _make_plan(self, scale_indexes: torch.Tensor):
        tuples, tuple_scales, scalar_positions = self.grouping(scale_indexes)
        used = tuple(sorted(set(tuple_scales.tolist())))
        return tuples, tuple_scales, scalar_positions, self._coding_tables(used)

    def table_digest(self, scale_indexes: torch.Tensor) -> bytes:
        return self._plan(scale_indexes)[3].digest

    def encode(self, y: torch.Tensor, mu: torch.Tensor,
               scale_indexes: torch.Tensor) -> tuple[bytes, torch.Tensor, bytes]:
        """Returns (bytes, y_hat, table digest). y, mu: (1,C,h,w) float; scale_indexes int."""
        tuples, tuple_scales, scalar_positions, tables = self._plan(scale_indexes)
        residual = (y - mu).reshape(-1).to(torch.float64)
        symbols, table_ids, r_hat = self._symbols(residual, scale_indexes.reshape(-1).to(torch.int64), tuples,
                                                  tuple_scales, scalar_positions, tables)
        encoder = BufferedRansEncoder()
        encoder.encode_with_indexes(symbols, table_ids, tables.cdfs, tables.cdf_lengths, tables.offsets)
        y_hat = mu + r_hat.reshape(mu.shape).to(mu.dtype)
        return encoder.flush(), y_hat, tables.digest

    def decode(self, data: bytes, mu: torch.Tensor, scale_indexes: torch.Tensor) -> tuple[torch.Tensor, bytes]:
        """Inverse of encode: returns (y_hat, table digest)."""
        tuples, tuple_scales, scalar_positions, tables = self._plan(scale_indexes)
        decoder = RansDecoder()
        decoder.set_stream(data)
        r_hat = self._read(decoder, scale_indexes.reshape(-1).to(torch.int64), tuples, tuple_scales,
                           scalar_positions, tables)
        return mu + r_hat.reshape(mu.shape).to(mu.dtype), tables.digest

    # --- latents coded position by position (entropy/autoregressive_coder.py) ------------------
    def serial_tables(self) -> SerialTables:
        return SerialTables(self)

    def encode_position(self, residual: torch.Tensor, scale_indexes: torch.Tensor,
                        tables: SerialTables) -> tuple[list[int], list[int], torch.Tensor]:
        """(symbols, table ids, r_hat) of the latents of one position: residual (C,) float64 and
        their scale indexes (C,) int64; tuples group channels of one scale, as a frame's grouping."""
        tuples, tuple_scales, scalar_positions = self.grouping(scale_indexes)
        tables.add(tuple_scales)
        return self._symbols(residual, scale_indexes, tuples, tuple_scales, scalar_positions, tables)

    def decode_position(self, decoder: RansDecoder, scale_indexes: torch.Tensor, tables: SerialTables) -> torch.Tensor:
        """r_hat (C,) float64 of one position, read from ``decoder`` (inverse of encode_position)."""
        tuples, tuple_scales, scalar_positions = self.grouping(scale_indexes)
        tables.add(tuple_scales)
        return self._read(decoder, scale_indexes, tuples, tuple_scales, scalar_positions, tables)

    # --- the symbols of a set of latents, shared by both ---------------------------------------
    def _symbols(self, residual: torch.Tensor, flat_scales: torch.Tensor, tuples: torch.Tensor,
                 tuple_scales: torch.Tensor, scalar_positions: torch.Tensor,
                 tables) -> tuple[list[int], list[int], torch.Tensor]:
        """(symbols, table ids, r_hat) in stream order: tuple symbols, then scalar symbols, then the
        coordinates of escaped tuples (in tuple order)."""
        r_hat = torch.zeros_like(residual)
        coords = self.lattice.quantize_coords(residual[tuples])  # (T, dim)
        r_hat[tuples] = self.lattice.from_coords(coords)
        symbols, escaped = self._index.symbols(coords, tuple_scales)
        # Scalar latents: rounding, the Gaussian conditional's tables (index = scale index).
        scalar_symbols = torch.round(residual[scalar_positions])
        r_hat[scalar_positions] = scalar_symbols
        escape_coords = coords[torch.nonzero(escaped).reshape(-1)].reshape(-1)
        all_symbols = symbols.tolist() + scalar_symbols.to(torch.int64).tolist() + escape_coords.tolist()
        table_ids = (tables.lattice_table_ids[tuple_scales].tolist() + flat_scales[scalar_positions].tolist()
                     + [tables.fallback_index] * len(escape_coords))
        return all_symbols, table_ids, r_hat

    def _read(self, decoder: RansDecoder, flat_scales: torch.Tensor, tuples: torch.Tensor, tuple_scales: torch.Tensor,
              scalar_positions: torch.Tensor, tables) -> torch.Tensor:
        """r_hat of what _symbols wrote: tuple and scalar symbols, then the escaped coordinates."""
        r_hat = torch.zeros(len(flat_scales), dtype=torch.float64)
        table_ids = tables.lattice_table_ids[tuple_scales].tolist() + flat_scales[scalar_positions].tolist()
        values = decoder.decode_stream(table_ids, tables.cdfs, tables.cdf_lengths, tables.offsets)
        symbols = torch.tensor(values[:len(tuple_scales)], dtype=torch.int64)
        r_hat[scalar_positions] = torch.tensor(values[len(tuple_scales):], dtype=torch.float64)
        coords, escaped = self._index.points(symbols, tuple_scales)
        escaped_rows = torch.nonzero(escaped).reshape(-1)
        num_escape_values = len(escaped_rows) * self.lattice.dim
        escape_values = decoder.decode_stream([tables.fallback_index] * num_escape_values, tables.cdfs,
                                              tables.cdf_lengths, tables.offsets)
        if num_escape_values:
            coords[escaped_rows] = torch.tensor(escape_values, dtype=torch.int64).reshape(-1, self.lattice.dim)
        r_hat[tuples] = self.lattice.from_coords(coords)
        return r_hat


class SerialTables:
    """The CDF list of a latent coded position by position: the Gaussian conditional's tables and
    the fallback first, then each lattice table appended when a position first uses it. Encoder
    and decoder see the same positions in the same order, so they grow the same list; the digest
    covers the lattice tables in that order (the desync guard's table part)."""

    def __init__(self, coder: LatticeLatentCoder) -> None:
        self.coder = coder
        scalar_cdfs, scalar_lengths, scalar_offsets = coder._scalar_cdfs
        fallback_cdf = _fallback_cdf()
        self.fallback_index = len(scalar_cdfs)
        self.cdfs = list(scalar_cdfs) + [fallback_cdf]
        self.cdf_lengths = list(scalar_lengths) + [len(fallback_cdf)]
        self.offsets = list(scalar_offsets) + [-FALLBACK_HALF_WIDTH]
        self.lattice_table_ids = torch.full((coder.tables.num_indexes,), -1, dtype=torch.int64)
        self._digest = hashlib.blake2b(digest_size=8)

    def add(self, scale_indexes: torch.Tensor) -> None:
        """Append the lattice tables of these scales that are not in the list yet."""
        for scale_index in sorted(set(scale_indexes.tolist())):
            if self.lattice_table_ids[scale_index] < 0:
                cdf = self.coder._lattice_cdf(scale_index)[1]
                self.lattice_table_ids[scale_index] = len(self.cdfs)
                self.cdfs.append(cdf)
                self.cdf_lengths.append(len(cdf))
                self.offsets.append(0)
                self._digest.update(np.asarray(cdf, dtype=np.int32).tobytes())

    @property
    def digest(self) -> bytes:
        return self._digest.copy().digest()
