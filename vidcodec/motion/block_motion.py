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
    displacement = mv.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)
    # floor division and remainder of quarter pels (>> and & floor towards minus infinity)
    whole_x, whole_y = displacement[:, 0] >> 2, displacement[:, 1] >> 2
    if int(max(whole_x.abs().max(), whole_y.abs().max())) + 1 > reference.margin:
        raise ValueError(f"motion beyond the reference's {reference.margin}-pixel margin")
    dtype = reference.flat.dtype
    weight_x = ((displacement[:, 0] & 3).to(dtype) / QUARTER).unsqueeze(1)
    weight_y = ((displacement[:, 1] & 3).to(dtype) / QUARTER).unsqueeze(1)
    index = (reference.origin + whole_y * reference.padded_width + whole_x).view(reference.n, 1, -1)
    index = index.expand(reference.n, reference.channels, -1)
    shape = (reference.n, reference.channels, reference.height, reference.width)

    def sample(offset: int) -> torch.Tensor:
        return reference.flat.gather(2, index + offset if offset else index).view(shape)

    top = sample(0) * (1 - weight_x) + sample(1) * weight_x
    bottom = sample(reference.padded_width) * (1 - weight_x) + sample(reference.padded_width + 1) * weight_x
    return top * (1 - weight_y) + bottom * weight_y


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

    x, reference: (N,3,H,W) float in [0,1], H and W multiples of block (and of 4 x block // 4).
    coarse_range: integer search range at 1/4 resolution (so +-4 x coarse_range pixels in all).
    lmbda: the rate-distortion trade-off (CompressAI's MSE scale, the codec's training lambda).
    """
    if x.shape != reference.shape or x.shape[-1] % block or x.shape[-2] % block or block % 4:
        raise ValueError(f"x {tuple(x.shape)} and reference {tuple(reference.shape)}: equal shapes, sides multiples "
                         f"of block={block}, block a multiple of 4")
    x_gray, ref_gray = x.mean(dim=1, keepdim=True), reference.mean(dim=1, keepdim=True)
    base = torch.zeros(x.shape[0], 2, x.shape[-2] // block, x.shape[-1] // block, dtype=torch.int64)
    bits_per_sse = lmbda * 255**2
    mv = _coarse_search(x_gray, ref_gray, block, coarse_range, bits_per_sse)
    ref_gray = Padded(ref_gray, SEARCH_MARGIN_PIXELS + 4 * coarse_range)
    # full resolution, per block: the neighbours' vectors (the coarse search has no smoothness term: a
    # block of flat or repeating content takes any far match, which then costs its vector's bits
    # twice), integer +-2 around the vector, then half and quarter pels
    mv = _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)
    for step, radius in ((QUARTER, 2), (QUARTER // 2, 1), (QUARTER // 4, 1)):
        mv = _refine(x_gray, ref_gray, mv, block, step, radius, bits_per_sse, base)
    return _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)


@torch.no_grad()
def polish(x: torch.Tensor, reference: torch.Tensor, mv: torch.Tensor, base: torch.Tensor, block: int = 16,
           lmbda: float = 0.0067) -> torch.Tensor:
    """``mv`` (a search's field) re-chosen for coding as deviations from ``base`` (global_motion.field):
    each block may take base's vector, a neighbour's deviation, or a quarter pel around its own."""
    x_gray = x.mean(dim=1, keepdim=True)
    margin = int(max(mv.abs().max(), base.abs().max())) // QUARTER + SEARCH_MARGIN_PIXELS
    ref_gray = Padded(reference.mean(dim=1, keepdim=True), margin)
    bits_per_sse = lmbda * 255**2
    mv = _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)
    mv = _refine(x_gray, ref_gray, mv, block, QUARTER // 4, 1, bits_per_sse, base)
    return _adopt_neighbours(x_gray, ref_gray, mv, block, bits_per_sse, base)


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


def _limit(candidate: torch.Tensor, reference: Padded) -> torch.Tensor:
    """A candidate field with its vectors kept inside the reference's padding."""
    reach = (reference.margin - 1) * QUARTER
    return candidate.clamp(-reach, reach)


def _candidate_cost(x: torch.Tensor, reference: Padded, candidate: torch.Tensor, field: torch.Tensor,
                    block: int, bits_per_sse: float, base: torch.Tensor) -> torch.Tensor:
    """Rate-distortion cost in bits of each block's vector in ``candidate``."""
    return (bits_per_sse * _block_sse(x, _predict_padded(reference, candidate, block), block)
            + _smoothness_bits(candidate, field, base))


def _neighbour(mv: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Each block's neighbour at (dy, dx) blocks away (edges replicated)."""
    return _shifted(mv.to(torch.float32), dx, dy).to(mv.dtype)


def _adopt_neighbours(x: torch.Tensor, reference: Padded, mv: torch.Tensor, block: int,
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


def _refine(x: torch.Tensor, reference: Padded, mv: torch.Tensor, block: int, step: int, radius: int,
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
