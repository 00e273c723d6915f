#!/usr/bin/env python
"""Write the generated test sequences as raw 8-bit YUV 4:2:0 files (BT.709, limited range).

    python scripts/data/make_sequences.py --demo       # the demo sequence of `make demo`
    python scripts/data/make_sequences.py --standin    # the held-out stand-in set, sequences/generated.yaml
    python scripts/data/make_sequences.py --patterns   # lavfi test patterns, sequences/patterns.yaml
    python scripts/data/make_sequences.py --photos     # the held-out photographs as PNG, sequences/heldout-photos.yaml

Content comes only from held-out photographs and held-out lavfi seeds (vidcodec.train.synthetic),
so no frame written here was seen in training. Files go to sequences/generated/ (git-ignored:
anyone can regenerate them byte for byte). Existing files of the right size are kept unless --force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

from vidcodec.io.color import rgb_to_yuv420
from vidcodec.io.yuv import SequenceGeometry, YuvWriter
from vidcodec.train.synthetic import HELDOUT_PHOTOS, HELDOUT_SEED_START, lavfi_clip, load_photo, photo_clip, read_lavfi

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "sequences" / "generated"
DATASET_FILE = REPO / "sequences" / "generated.yaml"

# name -> (kind, source, seed). Seeds are fixed: the files must be the same on every machine.
DEMO = {"Demo": ("photo", "astronaut", 7)}
STANDIN = {
    "HeldoutCoffee": ("photo", "coffee", 11),
    "HeldoutChelsea": ("photo", "chelsea", 12),
    "HeldoutAstronaut": ("photo", "astronaut", 13),
    "HeldoutMandelbrot": ("lavfi", "mandelbrot", HELDOUT_SEED_START + 14),
}
# Fixed lavfi test patterns (no seed, the source's defaults): where a rate ladder's monotonicity is
# checked (testsrc2 moves, smptebars is static, mandelbrot zooms).
PATTERNS = {
    "Testsrc2": ("pattern", "testsrc2", 0),
    "Smptebars": ("pattern", "smptebars", 0),
    "Mandelbrot": ("pattern", "mandelbrot", 0),
}
PATTERNS_FILE = REPO / "sequences" / "patterns.yaml"


def pattern_clip(source: str, num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """(T,H,W,3) float32 RGB in [0,1]: the first frames of a lavfi source with its default options."""
    return read_lavfi(f"{source}=size={width}x{height}:rate=30", num_frames).astype(np.float32) / 255.0


def file_name(name: str, geometry: SequenceGeometry) -> str:
    return f"{name}_{geometry.width}x{geometry.height}_{int(geometry.fps)}fps_420_8bit_YUV.yuv"


def write_sequence(path: Path, kind: str, source: str, seed: int, geometry: SequenceGeometry,
                   num_frames: int, force: bool) -> bool:
    """Returns True when the file was written, False when an identical-size file was kept."""
    if path.exists() and path.stat().st_size == geometry.frame_num_bytes * num_frames and not force:
        return False
    make_clip = {"photo": photo_clip, "lavfi": lavfi_clip, "pattern": pattern_clip}[kind]
    clip = make_clip(source, num_frames, geometry.height, geometry.width, seed)  # (T,H,W,3)
    tmp = path.with_name(path.name + ".partial")
    with YuvWriter(tmp, geometry) as writer:
        for frame in clip:
            rgb = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).unsqueeze(0)
            writer.write_frame(rgb_to_yuv420(rgb, 8))
    tmp.replace(path)
    return True


def write_photos(out_dir: Path, force: bool) -> None:
    """The held-out photographs (never trained on) as 8-bit RGB PNG, at their own sizes."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    for name in dict.fromkeys(HELDOUT_PHOTOS):
        if name == "cat":  # scikit-image's cat is chelsea
            continue
        path = out_dir / f"{name}.png"
        if path.is_file() and not force:
            print(f"kept  {path}")
            continue
        pixels = np.round(load_photo(name) * 255).astype(np.uint8)
        pixels = pixels[: pixels.shape[0] // 2 * 2, : pixels.shape[1] // 2 * 2]  # even sizes (chelsea is 451 wide)
        Image.fromarray(pixels).save(path)
        print(f"wrote {path} ({pixels.shape[1]}x{pixels.shape[0]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", action="store_true", help="write the demo sequence (416x240, 17 frames)")
    parser.add_argument("--standin", action="store_true", help="write the held-out stand-in set (416x240, 33 frames)")
    parser.add_argument("--patterns", action="store_true", help="write lavfi test patterns (416x240, 9 frames)")
    parser.add_argument("--photos", action="store_true",
                        help="write the held-out photographs as PNG (image evaluation, sequences/heldout-photos.yaml)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--size", default="416x240", help="WxH (default 416x240)")
    parser.add_argument("--frames", type=int, help="frames per sequence (default: 17 demo, 33 stand-in)")
    parser.add_argument("--force", action="store_true", help="rewrite existing files")
    args = parser.parse_args(argv)
    if not (args.demo or args.standin or args.patterns or args.photos):
        parser.error("nothing to do: pass --demo, --standin, --patterns and/or --photos")
    if args.photos:
        write_photos(args.out_dir / "photos", args.force)
    width, height = (int(v) for v in args.size.lower().split("x"))
    geometry = SequenceGeometry(width, height, 8, 30.0)
    geometry.validate()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    if args.demo:
        jobs += [(name, spec, args.frames or 17) for name, spec in DEMO.items()]
    if args.standin:
        jobs += [(name, spec, args.frames or 33) for name, spec in STANDIN.items()]
    if args.patterns:
        jobs += [(name, spec, args.frames or 9) for name, spec in PATTERNS.items()]
    entries = {}
    for name, (kind, source, seed), num_frames in jobs:
        path = args.out_dir / file_name(name, geometry)
        written = write_sequence(path, kind, source, seed, geometry, num_frames, args.force)
        print(f"{'wrote' if written else 'kept '} {path} ({num_frames} frames, {kind} {source}, seed {seed})")
        entries[name] = {"file": path.name, "width": width, "height": height, "fps": 30,
                         "frames": num_frames, "bit_depth": 8}
    if args.standin and args.out_dir.resolve() == DEFAULT_OUT.resolve():
        standin = {k: v for k, v in entries.items() if k in STANDIN}
        DATASET_FILE.write_text(
            "# Generated by scripts/data/make_sequences.py --standin (held-out content only); root is relative\n"
            "# to this file's directory.\n"
            + yaml.safe_dump({"name": "generated-standin",
                              "description": "held-out photographs and lavfi seeds with synthetic motion",
                              "root": "generated", "sequences": standin}, sort_keys=False)
        )
        print(f"wrote {DATASET_FILE}")
    if args.patterns and args.out_dir.resolve() == DEFAULT_OUT.resolve():
        patterns = {k: v for k, v in entries.items() if k in PATTERNS}
        PATTERNS_FILE.write_text(
            "# Generated by scripts/data/make_sequences.py --patterns (lavfi test patterns, default options); root is\n"
            "# relative to this file's directory.\n"
            + yaml.safe_dump({"name": "lavfi-patterns", "description": "lavfi testsrc2, smptebars and mandelbrot",
                              "root": "generated", "sequences": patterns}, sort_keys=False)
        )
        print(f"wrote {PATTERNS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
