"""Block motion: the encoder's search for one translation per block, and the prediction both sides build.

A classical motion search instead of a learned flow network: it needs no training (the 2 CPU cores
this project trains on go to the residual codec instead), it finds the large displacements of camera
pans that a small flow network trained on 256x256 crops misses, and its field is a few hundred small
integers per frame, which entropy/motion_coder.py codes at a few bits per block where nothing moves.

Units: motion vectors are in quarter pixels, int64, shape (N, 2, H/block, W/block), channel 0 the
horizontal (x) and 1 the vertical (y) displacement: the block at (bx, by) of the current frame is
predicted from the reference at (bx + mv_x / 4, by + mv_y / 4), sampled bilinearly, with edge
replication outside the picture (grid_sample's border padding).

The search (encoder only; the decoder needs just ``predict``): integer search of +-coarse_range at
1/4 resolution, +-2 integer refinement at full resolution, then half- and quarter-pel refinement. Each
step minimises the block's rate-distortion cost in bits, the codec's training loss per block:
lmbda x 255^2 x (sum of squared errors of the block's mean-of-RGB) + the estimated bits of its vector
difference to the left neighbour's (what entropy/motion_coder.py pays), so flat areas and noise keep
the smooth field their neighbours have instead of vectors that fit noise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

QUARTER = 4  # motion vector units per pixel
# Pixels of padding of the search's reference beyond its vectors: refinement moves a vector by up to
# 2 pixels, interpolation reads 1 more. Candidates are kept within it (_limit).
SEARCH_MARGIN_PIXELS = 4


def predict(reference: torch.Tensor, mv: torch.Tensor, block: int) -> torch.Tensor:
    """The motion-compensated prediction. reference: (N,C,H,W) float; mv: (N,2,H/block,W/block) int
    quarter pels. Returns (N,C,H,W), the same on encoder and decoder for the same inputs.

    Bilinear between the four pixels around each sample point with weights in quarter steps, edges
    replicated, in plain indexing rather than grid_sample: an integer vector copies pixels exactly
    (weights 1 and 0), which a "nothing changed" frame needs to cost nothing and lose nothing."""
    margin = int(mv.abs().max()) // QUARTER + 2 if mv.numel() else 2
    return _predict_padded(Padded(reference, margin), mv, block)


class Padded:
    """A reference with ``margin`` replicated pixels on every side, flattened for gathers: predictions
    of many candidate fields from one padding (the search's)."""

    def __init__(self, reference: torch.Tensor, margin: int) -> None:
        self.n, self.channels, self.height, self.width = reference.shape
        self.margin = margin
        self.padded_width = self.width + 2 * margin
        padded = F.pad(reference, (margin,) * 4, mode="replicate") if margin else reference
        self.flat = padded.reshape(self.n, self.channels, -1)
        # flat index of each picture pixel in the padded picture, times nothing moved
        rows = torch.arange(self.height).view(self.height, 1) + margin
        cols = torch.arange(self.width).view(1, self.width) + margin
        self.origin = (rows * self.padded_width + cols).view(1, self.height, self.width)


def _predict_padded(reference: Padded, mv: torch.Tensor, block: int) -> torch.Tensor:
    # floor division and remainder of quarter pels (>> and & floor towards minus infinity), per block
    whole_x, whole_y = mv[:, 0] >> 2, mv[:, 1] >> 2
    if int(max(whole_x.abs().max(), whole_y.abs().max())) + 1 > reference.margin:
        raise ValueError(f"motion beyond the reference's {reference.margin}-pixel margin")
    dtype = reference.flat.dtype

    def per_pixel(per_block: torch.Tensor) -> torch.Tensor:
        # blocks past the bottom and right edges (sides that are not multiples of block) are cut
        expanded = per_block.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)
        return expanded[..., :reference.height, :reference.width]

    weight_x = per_pixel(((mv[:, 0] & 3).to(dtype) / QUARTER).unsqueeze(1))
    weight_y = per_pixel(((mv[:, 1] & 3).to(dtype) / QUARTER).unsqueeze(1))
    index = (reference.origin + per_pixel(whole_y * reference.padded_width + whole_x)).view(reference.n, 1, -1)
    index = index.expand(reference.n, reference.channels, -1)
    shape = (reference.n, reference.channels, reference.height, reference.width)

    def sample(offset: int) -> torch.Tensor:
        return reference.flat.gather(2, index + offset if offset else index).view(shape)

    top = sample(0) * (1 - weight_x) + sample(1) * weight_x
    bottom = sample(reference.padded_width) * (1 - weight_x) + sample(reference.padded_width + 1) * weight_x
    return top * (1 - weight_y) + bottom * weight_y


class PhaseStack:
    """A one-channel reference interpolated at all 16 quarter-pel phases (the search's): a candidate
    field's prediction is then one gather, not four and a blend. The values equal predict()'s."""

    def __init__(self, reference: torch.Tensor, margin: int) -> None:
        self.n, _, self.height, self.width = reference.shape
        self.margin = margin
        padded = F.pad(reference, (margin, margin + 1, margin, margin + 1), mode="replicate")[:, 0]
        self.padded_width = self.width + 2 * margin
        rows, cols = self.height + 2 * margin, self.width + 2 * margin
        a, b = padded[:, :rows, :cols], padded[:, :rows, 1:cols + 1]
        c, d = padded[:, 1:rows + 1, :cols], padded[:, 1:rows + 1, 1:cols + 1]
        phases = []
        for fy in range(QUARTER):
            for fx in range(QUARTER):
                wx, wy = fx / QUARTER, fy / QUARTER
                top, bottom = a * (1 - wx) + b * wx, c * (1 - wx) + d * wx
                phases.append(top * (1 - wy) + bottom * wy)
        self.phase_size = rows * cols
        self.flat = torch.stack(phases, dim=1).reshape(self.n, -1)
        r = torch.arange(self.height).view(self.height, 1) + margin
        k = torch.arange(self.width).view(1, self.width) + margin
        self.origin = (r * self.padded_width + k).view(1, self.height, self.width)

    def predict(self, mv: torch.Tensor, block: int) -> torch.Tensor:
        """(N,1,H,W) prediction of a field whose vectors stay within the margin."""
        per_block = ((mv[:, 1] & 3) * QUARTER + (mv[:, 0] & 3)) * self.phase_size \
            + (mv[:, 1] >> 2) * self.padded_width + (mv[:, 0] >> 2)
        offset = per_block.repeat_interleave(block, dim=-2).repeat_interleave(block, dim=-1)
        index = (self.origin + offset[..., :self.height, :self.width]).view(self.n, -1)
        return self.flat.gather(1, index).view(self.n, 1, self.height, self.width)


def _block_sse(x: torch.Tensor, candidate: torch.Tensor, block: int) -> torch.Tensor:
    """Sum of squared errors per block, (N, H/block, W/block); x and candidate (N,1,H,W)."""
    return F.avg_pool2d((x - candidate) ** 2, block)[:, 0] * (block * block)


def vector_bits(difference: torch.Tensor) -> torch.Tensor:
    """Estimated bits of motion vector differences (N,2,...) in quarter pels, summed over x and y: about
    what a two-sided geometric law of a smooth field costs (0 -> ~0.2 bit, +-1 -> ~3, +-4 -> ~6)."""
    magnitude = difference.abs().to(torch.float32)
    return torch.where(magnitude == 0, 0.2, 2.0 + 2.0 * torch.log2(magnitude + 1.0)).sum(dim=1)


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
    ref_gray = PhaseStack(ref_gray, SEARCH_MARGIN_PIXELS + 4 * coarse_range)
    # full resolution, per block: the neighbours' vectors (the coarse search has no smoothness term: a
    # block of flat or repeating content takes any far match, which then costs its vector's bits
    # twice), integer +-2 around the vector, then half and quarter pels
    mv = _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)
    for step, radius in ((QUARTER, 2), (QUARTER // 2, 1), (QUARTER // 4, 1)):
        mv = _refine(x_gray, ref_gray, mv, block, step, radius, bits_per_sse, base)
    return _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)


@torch.no_grad()
def polish(x: torch.Tensor, reference: torch.Tensor, mv: torch.Tensor, base: torch.Tensor, block: int = 16,
           lmbda: float = 0.0067, steps: tuple[int, ...] = (QUARTER // 4,)) -> torch.Tensor:
    """``mv`` (a search's field, or one pooled from smaller blocks) re-chosen for coding as deviations
    from ``base`` (global_motion.field, or zero): each block may take base's vector, a neighbour's
    deviation, or one of the 3 x 3 vectors around its own at each of ``steps`` (quarter pels)."""
    x_gray = _whole_blocks(x, block)
    margin = int(max(mv.abs().max(), base.abs().max())) // QUARTER + SEARCH_MARGIN_PIXELS
    ref_gray = PhaseStack(_whole_blocks(reference, block), margin)
    bits_per_sse = lmbda * 255**2
    mv = _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)
    for step in steps:
        mv = _refine(x_gray, ref_gray, mv, block, step, 1, bits_per_sse, base)
    return _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)


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
            cost = (bits_per_sse * 16 * _block_sse(x_small, _window(padded, dx, dy, coarse_range, coarse_range), coarse_block)
                    + 0.05 * vector_bits(mv).view(1, 1, 1))
            mv = mv.expand(x_gray.shape[0], 2, *cost.shape[1:])
            if best_cost is None:
                best_cost, best_mv = cost, mv.clone()
            else:
                better = cost < best_cost
                best_cost = torch.where(better, cost, best_cost)
                best_mv = torch.where(better.unsqueeze(1), mv, best_mv)
    return best_mv


def _limit(candidate: torch.Tensor, reference: PhaseStack) -> torch.Tensor:
    """A candidate field with its vectors kept inside the reference's padding."""
    reach = (reference.margin - 1) * QUARTER
    return candidate.clamp(-reach, reach)


def _candidate_cost(x: torch.Tensor, reference: PhaseStack, candidate: torch.Tensor, field: torch.Tensor,
                    block: int, bits_per_sse: float, base: torch.Tensor) -> torch.Tensor:
    """Rate-distortion cost in bits of each block's vector in ``candidate``."""
    return (bits_per_sse * _block_sse(x, reference.predict(candidate, block), block)
            + _smoothness_bits(candidate, field, base))


def _neighbour(mv: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Each block's neighbour at (dy, dx) blocks away (edges replicated)."""
    return _shifted(mv.to(torch.float32), dx, dy).to(mv.dtype)


def _adopt_neighbours(x: torch.Tensor, reference: PhaseStack, mv: torch.Tensor, block: int,
                      bits_per_sse: float, base: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """Per block, the cheapest of its own vector, its four neighbours' (with their deviation from
    ``base`` carried over) and base's (a few passes, so that a good vector spreads over a region)."""
    for _ in range(passes):
        best_mv = mv
        best_cost = _candidate_cost(x, reference, mv, mv, block, bits_per_sse, base)
        deviation = mv - base
        candidates = [base + _neighbour(deviation, dy, dx) for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0))]
        for candidate in (_limit(c, reference) for c in candidates + [base]):
            cost = _candidate_cost(x, reference, candidate, mv, block, bits_per_sse, base)
            better = cost < best_cost
            best_cost = torch.where(better, cost, best_cost)
            best_mv = torch.where(better.unsqueeze(1), candidate, best_mv)
        mv = best_mv
    return mv


def _refine(x: torch.Tensor, reference: PhaseStack, mv: torch.Tensor, block: int, step: int, radius: int,
            bits_per_sse: float, base: torch.Tensor) -> torch.Tensor:
    """Best per block of the (2 radius + 1)^2 vectors mv + step * (i, j) and the zero vector, each
    costed next to the neighbours of ``mv``."""
    best_mv = mv
    best_cost = _candidate_cost(x, reference, mv, mv, block, bits_per_sse, base)
    offsets = [(dx * step, dy * step) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
               if dx or dy]
    candidates = [mv + torch.tensor(offset).view(1, 2, 1, 1) for offset in offsets] + [torch.zeros_like(mv), base]
    for candidate in (_limit(c, reference) for c in candidates):
        cost = _candidate_cost(x, reference, candidate, mv, block, bits_per_sse, base)
        better = cost < best_cost
        best_cost = torch.where(better, cost, best_cost)
        best_mv = torch.where(better.unsqueeze(1), candidate, best_mv)
    return best_mv
