"""Dead-leaves clips: occluding shapes with power-law sizes, in layers that move independently.

Why: the photographs we may train on are few (about twenty), and the lavfi sources are synthetic
patterns. Dead-leaves images (Matheron; Lee, Mumford and Huang 2001) reproduce the statistics that
make natural images compressible: a scale-invariant (power-law) spectrum from shape sizes with
density r^-3, sharp occluding edges, flat and smoothly shaded regions. Moving the layers at different
velocities adds what camera video has and a single moving photo lacks: occlusions and disocclusions,
where motion compensation fails and the residual coder must work.

Each shape is drawn with an anti-aliased edge (coverage from its signed distance, one pixel wide),
so sub-pixel motion changes the pictures smoothly, as it does through a camera's optics. Colours
are drawn from the training photographs' pixels, so their distribution is that of real scenes.

Everything is a pure function of the seed.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# Shape radii follow p(r) ~ r^-3 between these bounds (the scale-invariant dead-leaves law).
MIN_RADIUS_PX = 3.0
MAX_RADIUS_FRACTION = 0.4  # of the larger frame side
MAX_LAYER_SPEED_PX = 6.0  # per frame
# Summed shape area of the back layer over its canvas area: few gaps remain (they show the
# background colour). More coverage costs time: clip generation is linear in the shape count.
BACKGROUND_COVERAGE = 1.5


def power_law_radii(rng: np.random.Generator, count: int, r_min: float, r_max: float) -> np.ndarray:
    """``count`` radii with density proportional to r^-3 on [r_min, r_max] (inverse CDF)."""
    u = rng.random(count)
    return (r_min**-2 - u * (r_min**-2 - r_max**-2)) ** -0.5


def _shape_coverage(kind: int, rows: np.ndarray, cols: np.ndarray, radius: float, aspect: float,
                    angle: float) -> np.ndarray:
    """Coverage in [0,1] of a disc (0), ellipse (1) or rectangle (2) centred at (0,0): one minus the
    signed distance to the edge, clipped, so the edge is a one-pixel ramp."""
    if kind == 0:  # rotation-invariant: no need to rotate
        return np.clip(0.5 + radius - np.sqrt(rows * rows + cols * cols), 0.0, 1.0)
    cos, sin = np.cos(angle), np.sin(angle)
    u = cos * cols + sin * rows
    v = -sin * cols + cos * rows
    if kind == 1:
        # Distance scaled by the gradient of the implicit function: exact enough for a 1 px ramp.
        a, b = radius, radius * aspect
        level = np.hypot(u / a, v / b)
        distance = (level - 1.0) * np.minimum(a, b)
    else:
        half_u, half_v = radius, radius * aspect
        distance = np.maximum(np.abs(u) - half_u, np.abs(v) - half_v)
    return np.clip(0.5 - distance, 0.0, 1.0)


def dead_leaves_clip(num_frames: int, height: int, width: int, seed: int, palette: np.ndarray) -> np.ndarray:
    """(T,H,W,3) float32 RGB in [0,1].

    palette: (K,3) float colours to draw shape colours from (e.g. pixels of photographs).
    """
    rng = np.random.default_rng(seed)
    r_max = MAX_RADIUS_FRACTION * max(height, width)
    num_layers = int(rng.integers(1, 4))
    camera = rng.uniform(-MAX_LAYER_SPEED_PX, MAX_LAYER_SPEED_PX, 2) * rng.choice([0.0, 0.5, 1.0])
    # Centres are drawn where a shape can become visible during the clip: the frame plus the
    # distance a layer travels.
    margin = 2 * MAX_LAYER_SPEED_PX * num_frames
    area = (height + 2 * margin) * (width + 2 * margin)
    shapes = []  # back to front: (layer, kind, centre, radius, aspect, angle, colour, shading, grating)
    for layer in range(num_layers):
        # The back layer covers its area BACKGROUND_COVERAGE times over (no gaps); front layers
        # cover a fraction of it, so the layers behind stay visible between their shapes.
        coverage = BACKGROUND_COVERAGE if layer == 0 else rng.uniform(0.1, 0.4)
        r_min = MIN_RADIUS_PX if layer == 0 else 4 * MIN_RADIUS_PX
        radii = []
        while np.pi * np.sum(np.square(radii)) < coverage * area:
            radii.extend(power_law_radii(rng, 64, r_min, r_max))
        count = len(radii)  # drawn in random order, as leaves fall: big shapes also occlude small ones
        centres = np.stack([rng.uniform(-margin, height + margin, count),
                            rng.uniform(-margin, width + margin, count)], 1)
        colours = (palette[rng.integers(0, len(palette), count)] * rng.uniform(0.8, 1.2, (count, 1))).astype(np.float32)
        # A linear shading across the shape and, for some, a grating: smooth texture that moves with it.
        shadings = rng.normal(0, 0.15, (count, 2)) / np.maximum(radii, 1.0)[:, None]
        has_grating = rng.random(count) < 0.2
        gratings = np.stack([rng.uniform(0.1, 1.2, count), rng.uniform(0, np.pi, count),
                             rng.uniform(0.02, 0.12, count)], 1)
        kinds, aspects, angles = rng.integers(0, 3, count), rng.uniform(0.3, 1.0, count), rng.uniform(0, np.pi, count)
        for i in range(count):
            shapes.append((layer, int(kinds[i]), centres[i], radii[i], aspects[i], angles[i], colours[i], shadings[i],
                           gratings[i] if has_grating[i] else None))
    velocities = [camera] + [camera + rng.uniform(-MAX_LAYER_SPEED_PX, MAX_LAYER_SPEED_PX, 2)
                             for _ in range(num_layers - 1)]
    blur_sigma = rng.choice([0.0, rng.uniform(0.3, 1.0)])
    noise_sigma = rng.choice([0.0, rng.uniform(0.002, 0.01)])
    background = palette[rng.integers(0, len(palette))]

    frames = []
    for t in range(num_frames):
        canvas = np.empty((height, width, 3), np.float32)
        canvas[:] = background
        for layer, kind, centre, radius, aspect, angle, colour, shading, grating in shapes:
            cy, cx = centre + velocities[layer] * t
            reach = radius + 1.0
            r0, r1 = max(int(np.floor(cy - reach)), 0), min(int(np.ceil(cy + reach)) + 1, height)
            c0, c1 = max(int(np.floor(cx - reach)), 0), min(int(np.ceil(cx + reach)) + 1, width)
            if r1 <= r0 or c1 <= c0:
                continue
            # A column and a row vector: every expression below broadcasts to the box.
            rows = np.arange(r0, r1, dtype=np.float32)[:, None] - np.float32(cy)
            cols = np.arange(c0, c1, dtype=np.float32)[None, :] - np.float32(cx)
            alpha = _shape_coverage(kind, rows, cols, radius, aspect, angle)
            tone = 1.0 + shading[0] * rows + shading[1] * cols
            if grating is not None:
                frequency, direction, amplitude = grating
                tone = tone + amplitude * np.sin(frequency * (np.cos(direction) * cols + np.sin(direction) * rows))
            fill = colour * tone[..., None]
            region = canvas[r0:r1, c0:c1]
            region += alpha[..., None] * (fill - region)
        if blur_sigma:
            canvas = ndimage.gaussian_filter(canvas, (blur_sigma, blur_sigma, 0))
        if noise_sigma:
            canvas = canvas + rng.normal(0, noise_sigma, canvas.shape).astype(np.float32)
        frames.append(np.clip(canvas, 0.0, 1.0))
    return np.stack(frames).astype(np.float32)
