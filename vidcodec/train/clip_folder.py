"""Training clips from a user's own material (``vidcodec train --data DIR``) instead of generated ones.

Three layouts, told apart by what DIR holds:
  * "vimeo-septuplet": Vimeo-90k's septuplets, DIR/sep_trainlist.txt and DIR/sep_testlist.txt listing
    folders DIR/sequences/XXXXX/YYYY of im1.png .. im7.png; the test list gives the validation clips;
  * "videos": video files directly in DIR (anything PyAV decodes: .mp4, .mkv, .y4m, ...);
  * "image-folders": folders in DIR of numbered images (.png, .jpg, ...), one clip per folder.
Outside Vimeo-90k a fixed split holds out VALIDATION_FRACTION of the clip sources for validation:
seeded by SPLIT_SEED over the sorted names, so it depends on the folder only (not on --seed).

A clip is ``clip_frames`` consecutive frames from a random source and start, cropped to crop x crop
pixels at a random place, every draw from the caller's generator: like synthetic.random_clip, a clip
is a function of the generator's state, so batches stay a function of (seed, rank, step).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vidcodec.errors import ConfigError
from vidcodec.train.video_frames import probe_video, read_video_frames

VIMEO_TRAIN_LIST, VIMEO_TEST_LIST = "sep_trainlist.txt", "sep_testlist.txt"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# Files a folder of videos may hold beside them (notes, lists) that are not tried as videos.
NOT_VIDEO_SUFFIXES = frozenset({".txt", ".md", ".json", ".yaml", ".yml", ".csv"})
VALIDATION_FRACTION = 0.1
SPLIT_SEED = 0
LAYOUT_HELP = ("expected one of: video files (.mp4, .mkv, .y4m, ...), Vimeo-90k's septuplet folder "
               f"(sequences/, {VIMEO_TRAIN_LIST}, {VIMEO_TEST_LIST}), or folders of numbered images, one per clip")


@dataclass(frozen=True)
class ClipSource:
    """One video file or one folder of numbered images, with its number of frames."""

    path: str
    num_frames: int
    is_video: bool


@dataclass(frozen=True)
class DataFolder:
    root: str
    layout: str
    train: tuple[ClipSource, ...]
    validation: tuple[ClipSource, ...]
    validation_rule: str

    def summary(self) -> dict:
        """What a training log and an exported checkpoint's provenance record about the data."""
        return {"folder": self.root, "layout": self.layout, "files": len(self.train) + len(self.validation),
                "train": len(self.train), "validation": len(self.validation),
                "validation_rule": self.validation_rule}


def _numbered(name: str) -> tuple:
    """Sort key: frame_2 before frame_10 (the last number in the name, then the name)."""
    numbers = re.findall(r"\d+", name)
    return (int(numbers[-1]) if numbers else -1, name)


def image_paths(folder: Path) -> list[Path]:
    """The images of a clip folder in frame order."""
    names = [name for name in os.listdir(folder)
             if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES]
    return [folder / name for name in sorted(names, key=_numbered)]


def read_image(path: Path) -> np.ndarray:
    """(H,W,3) float32 RGB in [0,1] of an image file (grey, 16-bit and RGBA become RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I"):  # 16-bit grey: keep its precision
                grey = np.asarray(image, dtype=np.float32) / 65535.0
                return np.repeat(np.clip(grey, 0.0, 1.0)[..., None], 3, axis=2)
            return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as error:
        raise ConfigError(f"data file {path}: cannot be read as an image ({error}); remove or replace it") from None


def _refuse_small(path: Path | str, height: int, width: int, crop: int) -> None:
    if height < crop or width < crop:
        raise ConfigError(f"data file {path}: frames of {width} x {height} pixels are smaller than crop={crop}; "
                          f"lower crop to at most {min(height, width)} (crop: in the training config, a multiple of "
                          "the model's stride) or remove the file")


def _refuse_short(path: Path | str, num_frames: int, clip_frames: int) -> None:
    if num_frames < clip_frames:
        raise ConfigError(f"data file {path}: has {num_frames} frames, fewer than clip_frames={clip_frames}; "
                          "remove it or lower clip_frames")


def _image_folder_source(folder: Path, clip_frames: int, crop: int) -> ClipSource:
    images = image_paths(folder)
    _refuse_short(folder, len(images), clip_frames)
    first = read_image(images[0])
    _refuse_small(images[0], first.shape[0], first.shape[1], crop)
    return ClipSource(str(folder), len(images), is_video=False)


def _video_source(path: Path, clip_frames: int, crop: int) -> ClipSource:
    probe = probe_video(path)
    _refuse_short(path, probe.num_frames, clip_frames)
    _refuse_small(path, probe.height, probe.width, crop)
    return ClipSource(str(path), probe.num_frames, is_video=True)


def _vimeo_folder(root: Path, clip_frames: int, crop: int) -> DataFolder:
    sets = []
    for list_name in (VIMEO_TRAIN_LIST, VIMEO_TEST_LIST):
        list_path = root / list_name
        if not list_path.is_file():
            raise ConfigError(f"data folder {root}: has {VIMEO_TRAIN_LIST} but no {list_name}; Vimeo-90k's "
                              "septuplet folder holds both (unpack vimeo_septuplet.zip whole)")
        names = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
        if not names:
            raise ConfigError(f"data folder {root}: {list_name} lists no sequence")
        sets.append(names)
    # Checking the first sequence of each list, not all 91,701: Vimeo-90k's frames are all 448 x 256.
    # A sequence missing later stops training with its name (read_clip).
    for names in sets:
        folder = root / "sequences" / names[0]
        if not folder.is_dir():
            raise ConfigError(f"data folder {root}: {folder} is listed but missing; unpack sequences/ into {root}")
        _image_folder_source(folder, clip_frames, crop)
    train, test = ([ClipSource(str(root / "sequences" / name), 7, is_video=False) for name in names] for names in sets)
    return DataFolder(str(root), "vimeo-septuplet", tuple(train), tuple(test), f"Vimeo-90k's {VIMEO_TEST_LIST}")


def _split(root: Path, layout: str, sources: list[ClipSource]) -> DataFolder:
    if len(sources) < 2:
        raise ConfigError(f"data folder {root}: one clip source only; training holds out at least one for "
                          "validation, so add another video or image folder")
    sources = sorted(sources, key=lambda source: source.path)
    num_held_out = max(1, round(VALIDATION_FRACTION * len(sources)))
    held_out = set(np.random.default_rng(SPLIT_SEED).permutation(len(sources))[:num_held_out].tolist())
    validation = tuple(s for i, s in enumerate(sources) if i in held_out)
    train = tuple(s for i, s in enumerate(sources) if i not in held_out)
    rule = (f"{num_held_out} of {len(sources)} sources held out (fraction {VALIDATION_FRACTION}, seed {SPLIT_SEED} "
            f"over the sorted names): {', '.join(Path(s.path).name for s in validation[:10])}"
            + (" ..." if len(validation) > 10 else ""))
    return DataFolder(str(root), layout, train, validation, rule)


@lru_cache(maxsize=4)
def open_data_folder(root: str, clip_frames: int, crop: int) -> DataFolder:
    """The clip sources of ``root`` and their train / validation split; ConfigError naming the problem
    and its fix for a missing or empty folder, a mixed or unknown layout, an unreadable file, or
    frames fewer than ``clip_frames`` or smaller than ``crop``. Cached: each clip-making process
    opens the folder once."""
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(f"data folder {root} does not exist or is not a folder ({LAYOUT_HELP})")
    if (path / VIMEO_TRAIN_LIST).exists():
        return _vimeo_folder(path, clip_frames, crop)
    entries = sorted(entry for entry in path.iterdir() if not entry.name.startswith("."))
    videos = [e for e in entries if e.is_file() and e.suffix.lower() not in NOT_VIDEO_SUFFIXES | IMAGE_SUFFIXES]
    image_folders = [e for e in entries if e.is_dir() and image_paths(e)]
    loose_images = [e for e in entries if e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES]
    if videos and image_folders:
        raise ConfigError(f"data folder {root}: holds both video files ({videos[0].name}, ...) and folders of images "
                          f"({image_folders[0].name}, ...); give one kind per data folder")
    if videos:
        return _split(path, "videos", [_video_source(video, clip_frames, crop) for video in videos])
    if image_folders:
        return _split(path, "image-folders", [_image_folder_source(f, clip_frames, crop) for f in image_folders])
    if loose_images:
        raise ConfigError(f"data folder {root}: images directly in the folder ({loose_images[0].name}, ...); put "
                          "each clip's numbered images into a folder of its own inside it")
    raise ConfigError(f"data folder {root} holds no clips ({LAYOUT_HELP})")


def read_clip(source: ClipSource, start: int, clip_frames: int) -> np.ndarray:
    """(clip_frames,H,W,3) float32 RGB in [0,1]: frames start .. start + clip_frames - 1 of ``source``."""
    if source.is_video:
        return read_video_frames(Path(source.path), start, clip_frames).astype(np.float32) / 255.0
    folder = Path(source.path)
    if not folder.is_dir():
        raise ConfigError(f"data folder {folder} is missing (listed, or found when training started); restore it")
    images = image_paths(folder)
    _refuse_short(folder, len(images), start + clip_frames)
    frames = [read_image(path) for path in images[start:start + clip_frames]]
    if any(frame.shape != frames[0].shape for frame in frames):
        raise ConfigError(f"data folder {folder}: its images differ in size; a clip's frames must share one size")
    return np.stack(frames)


def folder_clip(rng: np.random.Generator, folder: DataFolder, clip_frames: int, crop: int,
                split: str = "train") -> np.ndarray:
    """(clip_frames,crop,crop,3) float32 RGB in [0,1]: a random clip of the split ("train" or
    "heldout", the validation sources), every choice drawn from ``rng``."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split='{split}' (expected 'train' or 'heldout')")
    sources = folder.train if split == "train" else folder.validation
    source = sources[int(rng.integers(len(sources)))]
    start = int(rng.integers(0, source.num_frames - clip_frames + 1))
    clip = read_clip(source, start, clip_frames)
    height, width = clip.shape[1:3]
    _refuse_small(source.path, height, width, crop)
    top, left = int(rng.integers(0, height - crop + 1)), int(rng.integers(0, width - crop + 1))
    return np.ascontiguousarray(clip[:, top:top + crop, left:left + crop])
