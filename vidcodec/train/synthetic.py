"""Generated video content: the only material vidcodec trains and is evaluated on.

Four sources (see shared ENV.md, "Data you may use"), mixed by CLIP_MIX:
  * photographs bundled with scikit-image and matplotlib moved by a synthetic camera (pan, zoom,
    rotation along a smooth random trajectory) with moving foreground patches that occlude the
    background, a brightness ramp, sensor noise and occasional motion blur;
  * the same under a tripod ("tripod"): a still background behind the moving patches, as in much
    camera video, where a codec should spend almost nothing on what did not change;
  * dead leaves (dead_leaves.py): occluding shapes with power-law sizes in independently moving
    layers, the statistics of natural images (scale invariance, edges, occlusions) on unlimited
    content, where the photographs are few;
  * FFmpeg lavfi sources through PyAV (mandelbrot zoom, testsrc2, life, cellauto): synthetic and
    screen-like content.

Everything is a pure function of its seed: the same arguments give the same bytes on every run.
The held-out photos (and a disjoint range of lavfi seeds) are never used for training; validation
and every reported figure use them.
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np
from scipy import ndimage

from vidcodec.train.dead_leaves import dead_leaves_clip

# chelsea and cat are the same photograph: both are held out.
HELDOUT_PHOTOS: tuple[str, ...] = ("astronaut", "coffee", "chelsea", "cat")
TRAIN_PHOTOS: tuple[str, ...] = (
    "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "camera", "brick", "grass",
    "gravel", "moon", "coins", "page", "text", "clock", "colorwheel", "logo",
    # Natural photographs that installed packages ship (recipe 3): a street scene and a portrait.
    "stereo_motorcycle", "grace_hopper",
)
# lavfi "gradients" is left out: its output is not a function of its seed (measured), and every
# clip here must be reproducible.
LAVFI_SOURCES: tuple[str, ...] = ("mandelbrot", "testsrc2", "life", "cellauto")
# lavfi seeds below this are for training, at or above it for held-out clips.
HELDOUT_SEED_START = 10**6
# Fraction of clips from each source (recipe 4). Photos stay the majority, as the closest to camera
# video; a quarter of them under a tripod, because before recipe 4 almost no clip had a still
# background and the models learned no way to keep one (measured with dcvc-small on the static
# smptebars: P-frames cost 36-54% of the I-frame's bits and came out 0.4-2.1 dB below it); dead
# leaves add content the few photographs lack; lavfi keeps synthetic patterns in view.
CLIP_MIX: dict[str, float] = {"photo": 0.4, "tripod": 0.15, "dead_leaves": 0.3, "lavfi": 0.15}
# life and cellauto draw one-pixel cells: binary noise that no codec compresses at these rates.
# Such clips dominated the training distortion (with ssf-small q3, 3 of 60 training clips carried 67%
# of the summed MSE at 6-10 dB PSNR), so their cells are drawn 4 to 16 pixels wide instead: rendered
# small and enlarged by pixel repetition, blocky screen-like content that moves by whole cells.
CELL_SIZES_PX: tuple[int, ...] = (4, 8, 16)
# Recorded in every exported checkpoint's provenance: 1 = one-pixel cells (the shipped ssf-small
# q1..q4 before the curriculum), 2 = cells of CELL_SIZES_PX, 3 = CLIP_MIX with dead leaves and two
# more photographs, 4 = CLIP_MIX with tripod clips. Bump it whenever a clip's content changes for a
# given seed.
DATA_RECIPE_VERSION = 4
CELLULAR_SOURCES = ("life", "cellauto")
MAX_PAN_PX_PER_FRAME = 8.0


def _read_photo(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import matplotlib.cbook
        import matplotlib.image

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
            return np.asarray(matplotlib.image.imread(file, format="jpg"))
    import skimage.data

    if name == "stereo_motorcycle":
        return skimage.data.stereo_motorcycle()[0]  # the left view of a stereo pair
    return np.asarray(getattr(skimage.data, name)())


@cache
def load_photo(name: str) -> np.ndarray:
    """(H,W,3) float32 RGB in [0,1] of a bundled photograph (grey and RGBA become RGB)."""
    image = _read_photo(name)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = image[..., :3].astype(np.float32)
    return image / 255.0 if image.max() > 1.0 else image


@lru_cache(maxsize=64)
def photo_at_least(name: str, min_side: float) -> np.ndarray:
    """The photograph, upscaled (bilinear) when its shorter side is below ``min_side``: room for the
    view and its pan. Cached: zooming a whole photograph costs more than a training clip."""
    image = load_photo(name)
    if min(image.shape[:2]) < min_side:
        factor = min_side / min(image.shape[:2])
        image = ndimage.zoom(image, (factor, factor, 1), order=1)
    return image


def _warp(image: np.ndarray, centre: np.ndarray, scale: float, angle: float, height: int, width: int) -> np.ndarray:
    """Sample an (height,width) view of ``image`` centred at ``centre`` (row, col), zoomed by
    ``scale`` (source pixels per output pixel) and rotated by ``angle`` radians."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    rows -= (height - 1) / 2
    cols -= (width - 1) / 2
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    src_rows = centre[0] + cos * rows - sin * cols
    src_cols = centre[1] + sin * rows + cos * cols
    return np.stack(
        [ndimage.map_coordinates(image[..., c], [src_rows, src_cols], order=1, mode="mirror") for c in range(3)],
        axis=-1,
    )


def photo_clip(photo: str, num_frames: int, height: int, width: int, seed: int, tripod: bool = False) -> np.ndarray:
    """(T,H,W,3) float32 RGB in [0,1]: a photograph under synthetic camera and object motion; with
    ``tripod`` the camera stands still (the patches, brightness ramp and noise stay as drawn)."""
    rng = np.random.default_rng(seed)
    needed = max(height, width) * 1.3 + 2 * MAX_PAN_PX_PER_FRAME * num_frames
    image = photo_at_least(photo, needed)
    photo_h, photo_w = image.shape[:2]
    centre = np.array([rng.uniform(0.3, 0.7) * photo_h, rng.uniform(0.3, 0.7) * photo_w])
    velocity = rng.uniform(-MAX_PAN_PX_PER_FRAME, MAX_PAN_PX_PER_FRAME, 2) * rng.choice([0.0, 0.3, 1.0])
    acceleration = rng.normal(0, 0.3, 2)
    scale = rng.uniform(0.8, 1.25)
    zoom_rate = rng.choice([1.0, rng.uniform(0.97, 1.03)])
    angle = rng.uniform(-0.1, 0.1)
    spin = rng.choice([0.0, rng.uniform(-0.02, 0.02)])
    gain_per_frame = rng.choice([0.0, rng.uniform(-0.03, 0.03)], p=[0.7, 0.3])
    noise_sigma = rng.choice([0.0, rng.uniform(0.002, 0.012)])
    blur = rng.random() < 0.2
    if tripod:  # after every draw, so that the patches, ramp and noise are the moving clip's
        velocity, acceleration, zoom_rate, spin, blur = np.zeros(2), np.zeros(2), 1.0, 0.0, False

    patches = []
    for _ in range(rng.integers(0, 4)):
        patch_h = int(rng.uniform(0.15, 0.35) * height)
        patch_w = int(rng.uniform(0.15, 0.35) * width)
        top = rng.integers(0, photo_h - patch_h)
        left = rng.integers(0, photo_w - patch_w)
        content = image[top : top + patch_h, left : left + patch_w]
        rows, cols = np.mgrid[0:patch_h, 0:patch_w]
        elliptic = ((rows - patch_h / 2) / (patch_h / 2)) ** 2 + ((cols - patch_w / 2) / (patch_w / 2)) ** 2 <= 1
        mask = elliptic if rng.random() < 0.5 else np.ones_like(elliptic)
        position = np.array([rng.uniform(0, height - patch_h), rng.uniform(0, width - patch_w)])
        patch_velocity = rng.uniform(-6, 6, 2)
        patches.append((content, mask, position, patch_velocity))

    frames = []
    for t in range(num_frames):
        offsets = (-1 / 3, 0.0, 1 / 3) if blur else (0.0,)
        views = []
        for dt in offsets:
            time = t + dt
            c = centre + velocity * time + 0.5 * acceleration * time**2
            views.append(_warp(image, c, scale * zoom_rate**time, angle + spin * time, height, width))
        frame = np.mean(views, axis=0)
        for content, mask, position, patch_velocity in patches:
            top, left = np.round(position + patch_velocity * t).astype(int)
            # Clip the patch to the frame; it may leave the view.
            r0, c0 = max(top, 0), max(left, 0)
            r1 = min(top + content.shape[0], height)
            c1 = min(left + content.shape[1], width)
            if r1 <= r0 or c1 <= c0:
                continue
            region = (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left))
            m = mask[region][..., None]
            frame[r0:r1, c0:c1] = np.where(m, content[region], frame[r0:r1, c0:c1])
        frame = frame * (1.0 + gain_per_frame * t)
        if noise_sigma:
            frame = frame + rng.normal(0, noise_sigma, frame.shape)
        frames.append(np.clip(frame, 0.0, 1.0))
    return np.stack(frames).astype(np.float32)


def _lavfi_spec(source: str, height: int, width: int, seed: int) -> str:
    size = f"size={width}x{height}:rate=30"
    rng = np.random.default_rng(seed)
    if source == "mandelbrot":
        return f"mandelbrot={size}:start_scale={rng.uniform(1.0, 3.0):.4f}:end_scale={rng.uniform(0.05, 0.3):.4f}"
    if source == "life":
        return f"life={size}:seed={seed % 2**31}:ratio={rng.uniform(0.05, 0.5):.3f}:mold={rng.integers(0, 20)}"
    if source == "cellauto":
        return f"cellauto={size}:seed={seed % 2**31}:rule={rng.choice([18, 30, 90, 110, 150])}"
    if source == "testsrc2":
        return f"testsrc2={size}"
    raise ValueError(f"unknown lavfi source '{source}' (known: {', '.join(LAVFI_SOURCES)})")


def read_lavfi(spec: str, num_frames: int, skip: int = 0) -> np.ndarray:
    """(T,H,W,3) uint8 RGB: frames skip .. skip + num_frames - 1 of the lavfi graph ``spec``."""
    # Imported here: a mix without lavfi (clip_mix) needs no PyAV, e.g. on a GPU machine without it.
    import av

    frames = []
    container = av.open(spec, format="lavfi")
    try:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= skip:
                frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == num_frames:
                break
    finally:
        container.close()
    return np.stack(frames)


def lavfi_clip(source: str, num_frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """(T,H,W,3) float32 RGB in [0,1] from an FFmpeg lavfi source; the seed picks the source's
    parameters and how many frames to skip."""
    rng = np.random.default_rng(seed + 1)
    skip = int(rng.integers(0, 60))
    cell = int(rng.choice(CELL_SIZES_PX)) if source in CELLULAR_SOURCES else 1
    rendered_h, rendered_w = -(-height // cell), -(-width // cell)
    clip = read_lavfi(_lavfi_spec(source, rendered_h, rendered_w, seed), num_frames, skip)
    if cell > 1:
        clip = clip.repeat(cell, axis=1).repeat(cell, axis=2)[:, :height, :width]
    return clip.astype(np.float32) / 255.0


@lru_cache(maxsize=1)
def training_palette() -> np.ndarray:
    """(K,3) float32 colours: a sparse sample of the training photographs' pixels (dead-leaves colours)."""
    return np.concatenate([load_photo(name)[::7, ::7].reshape(-1, 3) for name in TRAIN_PHOTOS])


def clip_mix_problem(mix: dict[str, float]) -> str | None:
    """Why ``mix`` (source -> fraction of clips) is not a usable mix, or None."""
    unknown = sorted(set(mix) - set(CLIP_MIX))
    if unknown:
        return f"clip_mix has sources {', '.join(unknown)} (known: {', '.join(CLIP_MIX)})"
    if any(not isinstance(f, (int, float)) or f < 0 for f in mix.values()) or sum(mix.values()) <= 0:
        return f"clip_mix={mix} (expected fractions >= 0 with a positive sum)"
    return None


def random_clip(rng: np.random.Generator, num_frames: int, height: int, width: int, split: str = "train",
                mix: dict[str, float] | None = None) -> np.ndarray:
    """A clip of the given split ("train" or "heldout"); draws everything from ``rng``. ``mix``:
    fraction of clips per source (normalized; default CLIP_MIX)."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split='{split}' (expected 'train' or 'heldout')")
    mix = CLIP_MIX if mix is None else mix
    problem = clip_mix_problem(mix)
    if problem:
        raise ValueError(problem)
    seed = int(rng.integers(0, HELDOUT_SEED_START))
    if split == "heldout":
        seed += HELDOUT_SEED_START
    total = sum(mix.values())
    source = rng.choice(list(mix), p=[f / total for f in mix.values()])
    if source == "lavfi":
        return lavfi_clip(str(rng.choice(LAVFI_SOURCES)), num_frames, height, width, seed)
    if source == "dead_leaves":
        return dead_leaves_clip(num_frames, height, width, seed, training_palette())
    photos = TRAIN_PHOTOS if split == "train" else HELDOUT_PHOTOS
    return photo_clip(str(rng.choice(photos)), num_frames, height, width, seed, tripod=source == "tripod")
