"""Block motion: the encoder's search for one translation per block, and the prediction both sides build.

A classical motion search instead of a learned flow network: it needs no training (the 2 CPU cores
this project trains on go to the residual codec instead), it finds the large displacements of camera
pans that a small flow network trained on 256x256 crops misses, and its field is a few hundred small
integers per frame, which entropy/motion_coder.py codes at a few bits per block where nothing moves.

Units: motion vectors are in quarter pixels, int64, shape (N, 2, H/block, W/block), channel 0 the
horizontal (x) and 1 the vertical (y) displacement: the block at (bx, by) of the current frame is
predicted from the reference at (bx + mv_x / 4, by + mv_y / 4), interpolated with 8-tap filters
(TAPS), with edge replication outside the picture. Blocks of 16, 32 or 64 pixels; the field covers
the frame with ceil(H / block) x ceil(W / block) blocks.

The search (encoder only; the decoder needs just ``predict``): integer search of +-coarse_range at
1/4 resolution, +-2 integer refinement at full resolution, then half- and quarter-pel refinement. Each
step minimises the block's rate-distortion cost in bits, the codec's training loss per block:
lmbda x 255^2 x (sum of squared errors of the block's mean-of-RGB) + the estimated bits of its vector
difference to the left neighbour's (what entropy/motion_coder.py pays), so flat areas and noise keep
the smooth field their neighbours have instead of vectors that fit noise. SearchContext.polish
re-chooses a field for larger blocks or against a global motion (global_motion.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

QUARTER = 4  # motion vector units per pixel
# Interpolation at quarter-pel phases 0, 1/4, 1/2, 3/4: 8-tap filters in 64ths (the DCT-based luma
# filters of HEVC). Why not bilinear: a skipped P-frame is the prediction, the next frame is predicted
# from it, and bilinear's [1/2, 1/2] at every half pel blurs a still-moving picture a little more each
# frame (measured on the stand-ins: 3 dB lost over 7 skipped frames of a slow pan). Phase 0 is an exact copy.
TAPS = ((0, 0, 0, 64, 0, 0, 0, 0), (-1, 4, -10, 58, 17, -5, 1, 0),
        (-1, 4, -11, 40, 40, -11, 4, -1), (0, 1, -5, 17, 58, -10, 4, -1))
TAPS_BEFORE = 3  # a sample at whole-pixel position k reads k - 3 .. k + 4
# Pixels of padding of the search's reference beyond its vectors: refinement moves a vector by up to
# 2 pixels, interpolation reads 4 more. Candidates are kept within it (_limit).
SEARCH_MARGIN_PIXELS = 7


def _filtered(picture: torch.Tensor, phase: int, dim: int) -> torch.Tensor:
    """The picture filtered along ``dim`` with TAPS[phase], valid part only (7 fewer samples): sample i
    of the result sits at position i + TAPS_BEFORE of the input. Taps applied one by one in a fixed
    order, so every caller computes the same floats."""
    length = picture.shape[dim] - 7
    total = None
    for tap, weight in enumerate(TAPS[phase]):
        term = picture.narrow(dim, tap, length) * (weight / 64.0)
        total = term if total is None else total + term
    return total


def predict(reference: torch.Tensor, mv: torch.Tensor, block: int, fine: torch.Tensor | None = None) -> torch.Tensor:
    """The motion-compensated prediction. reference: (N,C,H,W) float; mv: (N,2,H/block,W/block) int
    quarter pels (blocks past the bottom and right edges cut); fine: (N,2,H,W) int quarter pels added
    per pixel (a global motion's field, global_motion.field at block 1), or None. Returns (N,C,H,W), the
    same on encoder and decoder for the same inputs; edges replicated. An integer vector copies pixels
    exactly, which a "nothing changed" frame needs to cost nothing and lose nothing. Separable: the four
    horizontal phases of the padded reference, then the vertical filter of each pixel's phase by gathers."""
    n, channels, height, width = reference.shape
    reach = (int(mv.abs().max()) if mv.numel() else 0) + (int(fine.abs().max()) if fine is not None else 0)
    margin = reach // QUARTER + 8
    padded = F.pad(reference, (margin,) * 4, mode="replicate")
    rows, columns = padded.shape[-2], padded.shape[-1] - 7
    horizontal = torch.stack([_filtered(padded, phase, -1) for phase in range(QUARTER)], dim=2)
    flat = horizontal.reshape(n, channels, -1)
    origin = _origin(height, width, margin, columns)
    if fine is None:  # per block, then expanded: cheaper
        offset = _per_pixel((mv[:, 0] & 3) * rows * columns + (mv[:, 1] >> 2) * columns + (mv[:, 0] >> 2),
                            block, height, width)
        vertical_phase = _per_pixel(mv[:, 1] & 3, block, height, width)
    else:
        displacement = _per_pixel(mv, block, height, width) + fine
        offset = (displacement[:, 0] & 3) * rows * columns + (displacement[:, 1] >> 2) * columns \
            + (displacement[:, 0] >> 2)
        vertical_phase = displacement[:, 1] & 3
    index = (origin + offset).view(n, 1, -1).expand(n, channels, -1)
    weights = torch.tensor(TAPS, dtype=reference.dtype) / 64.0
    vertical_phase = vertical_phase.unsqueeze(1)
    total = None
    for tap in range(len(TAPS[0])):
        term = flat.gather(2, index + tap * columns).view(n, channels, height, width) * weights[vertical_phase, tap]
        total = term if total is None else total + term
    return total


def _origin(height: int, width: int, margin: int, columns: int) -> torch.Tensor:
    """(1,H,W) flat index, in a picture padded by ``margin`` whose rows hold ``columns`` filtered
    samples, of the first tap of each pixel when nothing moved."""
    rows = torch.arange(height).view(height, 1) + margin - TAPS_BEFORE
    cols = torch.arange(width).view(1, width) + margin - TAPS_BEFORE
    return (rows * columns + cols).view(1, height, width)


def _per_pixel(per_block: torch.Tensor, block: int, height: int, width: int) -> torch.Tensor:
    """(N,Hb,Wb) -> (N,H,W): each block's value on its pixels; blocks past the edges cut, pixels past
    the last block (a search picture padded further) take the last block's value."""
    if block == 1:
        expanded = per_block
    else:  # each value repeated over its block (a view, then one copy: faster than repeat_interleave)
        *lead, rows, cols = per_block.shape
        expanded = per_block.view(*lead, rows, 1, cols, 1).expand(*lead, rows, block, cols, block) \
            .reshape(*lead, rows * block, cols * block)
    if expanded.shape[-2] < height:
        extra = expanded[..., -1:, :].expand(*expanded.shape[:-2], height - expanded.shape[-2], expanded.shape[-1])
        expanded = torch.cat((expanded, extra), dim=-2)
    if expanded.shape[-1] < width:
        extra = expanded[..., -1:].expand(*expanded.shape[:-1], width - expanded.shape[-1])
        expanded = torch.cat((expanded, extra), dim=-1)
    return expanded[..., :height, :width]


class PhaseStack:
    """A one-channel reference interpolated at all 16 quarter-pel phases (the search's): a candidate
    field's prediction is then one gather, not eight. The values equal predict()'s."""

    def __init__(self, reference: torch.Tensor, margin: int) -> None:
        self.n, _, self.height, self.width = reference.shape
        self.margin = margin
        padded = F.pad(reference, (margin,) * 4, mode="replicate")
        horizontal = [_filtered(padded, phase, -1) for phase in range(QUARTER)]
        phases = [_filtered(h, phase_y, -2) for phase_y in range(QUARTER) for h in horizontal]
        self.columns = phases[0].shape[-1]
        self.phase_size = phases[0].shape[-2] * self.columns
        self.flat = torch.stack(phases, dim=1).reshape(self.n, -1)
        # a filtered sample i sits at padded position i + TAPS_BEFORE, in rows and in columns
        self.origin = _origin(self.height, self.width, margin, self.columns)

    def predict(self, mv: torch.Tensor, block: int, fine: torch.Tensor | None = None) -> torch.Tensor:
        """(N,1,H,W) prediction of a field (plus ``fine``, as in predict()) within the margin."""
        if fine is not None:
            mv = _per_pixel(mv, block, self.height, self.width) + fine
            block = 1
        per_block = ((mv[:, 1] & 3) * QUARTER + (mv[:, 0] & 3)) * self.phase_size \
            + (mv[:, 1] >> 2) * self.columns + (mv[:, 0] >> 2)
        index = (self.origin + _per_pixel(per_block, block, self.height, self.width)).view(self.n, -1)
        return self.flat.gather(1, index).view(self.n, 1, self.height, self.width)


def _block_sse(x: torch.Tensor, candidate: torch.Tensor, block: int) -> torch.Tensor:
    """Sum of squared errors per block, (N, H/block, W/block); x and candidate (N,1,H,W)."""
    return F.avg_pool2d(torch.square(x - candidate), block)[:, 0] * (block * block)


def vector_bits(difference: torch.Tensor) -> torch.Tensor:
    """Estimated bits of motion vector differences (N,2,...) in quarter pels, summed over x and y: about
    what a two-sided geometric law of a smooth field costs (0 -> ~0.2 bit, +-1 -> ~3, +-4 -> ~6)."""
    magnitude = difference.abs()
    if magnitude.numel() and int(magnitude.max()) < len(_VECTOR_BITS):  # the search's usual case: a lookup
        return _VECTOR_BITS[magnitude].sum(dim=1)
    return _bits_of_magnitude(magnitude.to(torch.float32)).sum(dim=1)


def _bits_of_magnitude(magnitude: torch.Tensor) -> torch.Tensor:
    return torch.where(magnitude == 0, 0.2, 2.0 + 2.0 * torch.log2(magnitude + 1.0))


# vector_bits of every magnitude up to 1023 quarter pels, computed as vector_bits computes larger ones
_VECTOR_BITS = _bits_of_magnitude(torch.arange(1024, dtype=torch.float32))


def _smoothness_bits(candidate: torch.Tensor, field: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """Bits of each block's vector in ``candidate`` next to its neighbours in ``field``, both coded as
    deviations from ``base`` (the global motion's field, or zero): the deviation's difference to the left
    neighbour's (which the motion coder sends) and the right neighbour's difference to it (the next one
    it sends). The first column's left neighbour is zero, the last has no right one."""
    candidate, field = candidate - base, field - base
    left = torch.cat((torch.zeros_like(field[..., :1]), field[..., :-1]), dim=-1)
    bits = vector_bits(candidate - left)
    bits[..., :-1] += vector_bits(field[..., 1:] - candidate[..., :-1])
    return bits


def _shifted(reference: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """reference moved by an integer (dx, dy): out[y, x] = reference[y + dy, x + dx], edges replicated."""
    return _window(F.pad(reference, (abs(dx), abs(dx), abs(dy), abs(dy)), mode="replicate"), dx, dy, abs(dx), abs(dy))


def _window(padded: torch.Tensor, dx: int, dy: int, margin_x: int, margin_y: int) -> torch.Tensor:
    """The view of a picture padded by margin_x / margin_y on each side, moved by (dx, dy)."""
    height, width = padded.shape[-2] - 2 * margin_y, padded.shape[-1] - 2 * margin_x
    return padded[..., margin_y + dy:margin_y + dy + height, margin_x + dx:margin_x + dx + width]


@torch.no_grad()
def search(x: torch.Tensor, reference: torch.Tensor, block: int = 16, coarse_range: int = 8,
           lmbda: float = 0.0067) -> torch.Tensor:
    """Motion vectors (N,2,H/block,W/block) int64 quarter pels that predict x from reference.

    x, reference: (N,3,H,W) float in [0,1], H and W multiples of 16 (the field covers the picture with
    ceil(H / block) x ceil(W / block) blocks; the search sees both padded to whole blocks).
    coarse_range: integer search range at 1/4 resolution (so +-4 x coarse_range pixels in all).
    lmbda: the rate-distortion trade-off (CompressAI's MSE scale, the codec's training lambda).
    """
    if x.shape != reference.shape or x.shape[-1] % 16 or x.shape[-2] % 16 or block % 16:
        raise ValueError(f"x {tuple(x.shape)} and reference {tuple(reference.shape)}: equal shapes, sides multiples "
                         f"of 16; block={block} a multiple of 16")
    x_gray, ref_gray = _whole_blocks(x, block), _whole_blocks(reference, block)
    base = torch.zeros(x.shape[0], 2, x_gray.shape[-2] // block, x_gray.shape[-1] // block, dtype=torch.int64)
    bits_per_sse = lmbda * 255**2
    mv = _coarse_search(x_gray, ref_gray, block, coarse_range, bits_per_sse)
    cost = _CostModel(x_gray, PhaseStack(ref_gray, SEARCH_MARGIN_PIXELS + 4 * coarse_range), block, bits_per_sse, base)
    # full resolution, per block: the neighbours' vectors (the coarse search has no smoothness term: a
    # block of flat or repeating content takes any far match, which then costs its vector's bits
    # twice), integer +-2 around the vector, then half and quarter pels
    mv = _adopt_neighbours(cost, mv)
    for step, radius in ((QUARTER, 2), (QUARTER // 2, 1), (QUARTER // 4, 1)):
        mv = _refine(cost, mv, step, radius)
    return _adopt_neighbours(cost, mv)


class SearchContext:
    """One frame's search state shared by the refinements the encoder tries (block sizes, global
    motion): x's mean of the colour channels padded to whole blocks of every size, and the reference's
    16 phases with a margin of ``reach`` quarter pels plus the refinement's."""

    def __init__(self, x: torch.Tensor, reference: torch.Tensor, lmbda: float, reach: int, multiple: int = 64) -> None:
        self.x_gray = _whole_blocks(x, multiple)
        self.reference = PhaseStack(_whole_blocks(reference, multiple), reach // QUARTER + SEARCH_MARGIN_PIXELS)
        self.bits_per_sse = lmbda * 255**2

    def _fine(self, fine: torch.Tensor | None) -> torch.Tensor | None:
        if fine is None:
            return None
        right, bottom = self.x_gray.shape[-1] - fine.shape[-1], self.x_gray.shape[-2] - fine.shape[-2]
        return F.pad(fine.to(torch.float32), (0, right, 0, bottom), mode="replicate").to(torch.int64)

    @torch.no_grad()
    def polish(self, mv: torch.Tensor, base: torch.Tensor, block: int, steps: tuple[int, ...] = (QUARTER // 4,),
               fine: torch.Tensor | None = None, passes: int = 2) -> torch.Tensor:
        """``mv`` (a search's field, or one pooled from smaller blocks) re-chosen for coding as deviations
        from ``base`` (global_motion.field, or zero): each block may take base's vector, a neighbour's
        deviation, or one of the 3 x 3 vectors around its own at each of ``steps`` (quarter pels). With
        ``fine`` (the global motion per pixel, whose block samples are base) a block predicts with its
        deviation from base plus fine, as the decoder will."""
        cost = _CostModel(self.x_gray, self.reference, block, self.bits_per_sse, base, self._fine(fine))
        mv = _adopt_neighbours(cost, mv, passes)
        for step in steps:
            mv = _refine(cost, mv, step, 1)
        return _adopt_neighbours(cost, mv, passes)


def pooled(mv: torch.Tensor, factor: int) -> torch.Tensor:
    """A field of blocks ``factor`` times larger: the rounded mean of the vectors each one covers."""
    rows, cols = -(-mv.shape[-2] // factor), -(-mv.shape[-1] // factor)
    padded = F.pad(mv.to(torch.float32), (0, cols * factor - mv.shape[-1], 0, rows * factor - mv.shape[-2]),
                   mode="replicate")
    return F.avg_pool2d(padded, factor).round().to(torch.int64)


def _whole_blocks(picture: torch.Tensor, block: int) -> torch.Tensor:
    """The mean of the colour channels, (N,1,H',W'), edges replicated out to whole blocks."""
    gray = picture.mean(dim=1, keepdim=True)
    bottom, right = -gray.shape[-2] % block, -gray.shape[-1] % block
    return F.pad(gray, (0, right, 0, bottom), mode="replicate") if bottom or right else gray


def blocks_of(frame_shape: tuple[int, int], block: int) -> tuple[int, int]:
    """(rows, columns) of blocks that cover a frame."""
    return -(-frame_shape[0] // block), -(-frame_shape[1] // block)


def _coarse_search(x_gray: torch.Tensor, ref_gray: torch.Tensor, block: int, coarse_range: int,
                   bits_per_sse: float) -> torch.Tensor:
    """Every integer displacement at 1/4 resolution, the best per block (in quarter pels)."""
    x_small, ref_small = F.avg_pool2d(x_gray, 4), F.avg_pool2d(ref_gray, 4)
    padded = F.pad(ref_small, (coarse_range,) * 4, mode="replicate")
    coarse_block = block // 4
    best_cost = best_mv = None
    for dy in range(-coarse_range, coarse_range + 1):
        for dx in range(-coarse_range, coarse_range + 1):
            mv = torch.tensor([dx * 4 * QUARTER, dy * 4 * QUARTER]).view(1, 2, 1, 1)
            # a tie-breaker (not the vector's bits: neighbours share it and pay its difference only):
            # flat areas take the shortest motion
            # a coarse pixel stands for 16: its squared errors count 16 times
            cost = (bits_per_sse * 16 * _block_sse(x_small, _window(padded, dx, dy, coarse_range, coarse_range),
                                                   coarse_block)
                    + 0.05 * vector_bits(mv).view(1, 1, 1))
            mv = mv.expand(x_gray.shape[0], 2, *cost.shape[1:])
            if best_cost is None:
                best_cost, best_mv = cost, mv.clone()
            else:
                better = cost < best_cost
                best_cost = torch.where(better, cost, best_cost)
                best_mv = torch.where(better.unsqueeze(1), mv, best_mv)
    return best_mv


class _CostModel:
    """What a candidate field costs, in bits per block: lmbda x 255^2 x the block's SSE of its prediction
    (of the mean of the colour channels) + the estimated bits of its vector next to its neighbours,
    coded as deviations from ``base``. With ``fine`` (per-pixel global motion whose block samples are
    base) a block predicts with its deviation from base plus fine, as the decoder will."""

    def __init__(self, x: torch.Tensor, reference: PhaseStack, block: int, bits_per_sse: float,
                 base: torch.Tensor, fine: torch.Tensor | None = None) -> None:
        self.x, self.reference, self.block, self.bits_per_sse = x, reference, block, bits_per_sse
        self.base, self.fine = base, fine

    def limit(self, candidate: torch.Tensor) -> torch.Tensor:
        """The candidate with its vectors kept inside the reference's padding (the filter reads 4 pixels)."""
        reach = (self.reference.margin - 5) * QUARTER
        if self.fine is None:
            return candidate.clamp(-reach, reach)
        deviation_reach = max(reach - int(self.fine.abs().max()), 0)
        return self.base + (candidate - self.base).clamp(-deviation_reach, deviation_reach)

    def __call__(self, candidate: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
        if self.fine is None:
            prediction = self.reference.predict(candidate, self.block)
        else:
            prediction = self.reference.predict(candidate - self.base, self.block, self.fine)
        sse = _block_sse(self.x, prediction, self.block)[..., :candidate.shape[-2], :candidate.shape[-1]]
        return self.bits_per_sse * sse + _smoothness_bits(candidate, field, self.base)


def _neighbour(mv: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Each block's neighbour at (dy, dx) blocks away (edges replicated)."""
    return _shifted(mv.to(torch.float32), dx, dy).to(mv.dtype)


def _best(cost: _CostModel, mv: torch.Tensor, candidates: list[torch.Tensor]) -> torch.Tensor:
    """Per block, the cheapest of mv and the candidates, each costed next to the neighbours of mv."""
    best_mv, best_cost = mv, cost(mv, mv)
    for candidate in (cost.limit(c) for c in candidates):
        candidate_cost = cost(candidate, mv)
        better = candidate_cost < best_cost
        best_cost = torch.where(better, candidate_cost, best_cost)
        best_mv = torch.where(better.unsqueeze(1), candidate, best_mv)
    return best_mv


def _adopt_neighbours(cost: _CostModel, mv: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """Per block, the cheapest of its own vector, its four neighbours' (with their deviation from the
    base carried over) and the base's (a few passes, so that a good vector spreads over a region)."""
    for _ in range(passes):
        deviation = mv - cost.base
        neighbours = [cost.base + _neighbour(deviation, dy, dx) for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0))]
        mv = _best(cost, mv, neighbours + [cost.base])
    return mv


def _refine(cost: _CostModel, mv: torch.Tensor, step: int, radius: int) -> torch.Tensor:
    """Best per block of the (2 radius + 1)^2 vectors mv + step * (i, j), the zero vector and the base."""
    offsets = [(dx * step, dy * step) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
               if dx or dy]
    candidates = [mv + torch.tensor(offset).view(1, 2, 1, 1) for offset in offsets]
    return _best(cost, mv, candidates + [torch.zeros_like(mv), cost.base])
