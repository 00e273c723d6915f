"""Image coding: one picture in, one file out, bit-exact decoding (``encode_image`` / ``decode_image``).

An image file is a one-frame stream in one file, so it has the video syntax's hygiene (magic,
version, CRC, model hashes, desync guard) and the same decoder::

    magic            4 bytes  b"VIDI"
    header_length    u32      bytes of the sequence header that follows
    sequence header  bitstream/syntax.py: 1 frame, intra period 1, fps 1; intra model = inter model
    frame            the I-frame, as a frame file of that stream (its own CRC)

Inputs: anything Pillow reads (PNG, ...; converted to 8-bit RGB) or one frame of raw YUV 4:2:0 /
.y4m (geometry as for sequences). The codec sees RGB in [0,1]; the reconstruction is written as
8-bit RGB PNG, or as YUV 4:2:0 when the output name ends in .yuv. The tools act on the image
codec's latent (role "intra"): --quant hex|oct and --latent-shift.
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import STREAM_NONCE_BYTES, SequenceHeader
from vidcodec.config import CodecConfig
from vidcodec.decoder import Decoder
from vidcodec.encoder import Encoder
from vidcodec.errors import OutputError
from vidcodec.io.color import rgb_to_yuv420, yuv420_to_rgb
from vidcodec.io.output_paths import check_output_file, staged_file
from vidcodec.io.yuv import SequenceError, SequenceGeometry, YuvReader, YuvWriter, resolve_geometry
from vidcodec.metrics import bpp, psnr_rgb_db
from vidcodec.pipeline import decoder_for_stream, load_models, sequence_header

IMAGE_MAGIC = b"VIDI"
RAW_SUFFIXES = (".yuv", ".y4m")


@dataclass
class ImageResult:
    width: int
    height: int
    bytes: int
    bpp: float
    psnr_rgb: float
    enc_s: float


def read_image(path: Path, size: str | None = None) -> torch.Tensor:
    """(1,3,H,W) float32 RGB in [0,1]; raw YUV gives its first frame."""
    path = Path(path)
    if not path.is_file():
        raise SequenceError(f"input image {path} not found")
    if path.suffix.lower() in RAW_SUFFIXES:
        reader = YuvReader(path, resolve_geometry(path, size))
        return yuv420_to_rgb(reader.read_frame(0), reader.geometry.bit_depth)
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            rgb = _rgb_samples(image, path)
    except Image.DecompressionBombError as error:
        raise SequenceError(f"{path}: too many pixels to read safely ({error}); crop or scale it down first") from None
    except (UnidentifiedImageError, OSError) as error:
        raise SequenceError(f"{path}: not an image Pillow can read ({error}); "
                            "give a PNG or a raw .yuv / .y4m") from None
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise SequenceError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is too small (at least 2x2)")
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


# Pillow's modes of one channel of more than 8 bits (16-bit PNG and TIFF): convert("RGB") would
# clip their samples at 255 instead of scaling them.
WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
MAX_16BIT = 65535


def _rgb_samples(image, path: Path) -> np.ndarray:
    """(H,W,3) float32 in [0,1] of a Pillow image: 16-bit grey scaled by 1/65535, the rest through 8-bit RGB."""
    if image.mode not in WIDE_GRAY_MODES:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    grey = np.asarray(image).astype(np.float64)
    if grey.size and (grey.min() < 0 or grey.max() > MAX_16BIT):
        raise SequenceError(f"{path}: {image.mode} samples outside 0..{MAX_16BIT}; give a 16-bit or 8-bit picture")
    return np.repeat((grey / MAX_16BIT).astype(np.float32)[:, :, None], 3, axis=2)


def write_image(path: Path, x: torch.Tensor) -> None:
    """8-bit RGB PNG (or YUV 4:2:0 for a .yuv name), written atomically. Odd sizes cannot be 4:2:0."""
    path = Path(path)
    with staged_file(path) as tmp:
        if path.suffix.lower() == ".yuv":
            height, width = x.shape[-2:]
            with YuvWriter(tmp, SequenceGeometry(width, height, 8, 1.0)) as writer:
                writer.write_frame(rgb_to_yuv420(x, 8))
        else:
            from PIL import Image

            pixels = torch.round(x[0].clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(pixels, "RGB").save(tmp, format="PNG")


def _same_path(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def encode_image(image_path: Path, out_path: Path, config: CodecConfig, recon_path: Path | None = None,
                 size: str | None = None, force: bool = False) -> ImageResult:
    """Code one picture into ``out_path``; the tools of ``config`` act on the image latent."""
    out_path = Path(out_path)
    check_output_file(out_path, [image_path], force, "-o")
    if recon_path is not None:
        check_output_file(recon_path, [image_path], force, "--recon")
        if _same_path(recon_path, out_path):
            raise OutputError(f"--recon {recon_path} and -o name the same file; give each its own name")
    x = read_image(image_path, size)
    height, width = x.shape[-2:]
    if width % 2 or height % 2:  # the sequence header (4:2:0 syntax) holds even sizes only
        raise SequenceError(f"{image_path}: {width}x{height} has an odd side; image files code even sizes "
                            f"only: crop it to {width - width % 2}x{height - height % 2} first")
    torch.set_num_threads(config.num_threads)
    config = replace(config, intra_period=1, quant_scope="intra", latent_shift_scope="intra")
    models = load_models(config)
    models.attach_tools(config.coding_tools())
    # As for sequences (pipeline.content_nonce): the same picture gives the same file, another one
    # another sequence id.
    nonce = hashlib.sha256(x.numpy().tobytes()).digest()[:STREAM_NONCE_BYTES]
    header = sequence_header(config, models, SequenceGeometry(width, height, 8, 1.0), 1, nonce)
    start = time.perf_counter()
    header_bytes = header.write()
    packet = Encoder(models.intra.codec, models.inter.codec, header).encode(0, x)
    data = IMAGE_MAGIC + struct.pack("<I", len(header_bytes)) + header_bytes + packet.data
    enc_s = time.perf_counter() - start
    if config.verify:
        decoded = Decoder(models.intra.codec, models.inter.codec, header, header_bytes).decode(packet.data, "verify")
        if not torch.equal(decoded, packet.x_hat):
            raise RuntimeError("verification failed: the decoder's picture differs from the encoder's")
    with staged_file(out_path) as tmp:
        tmp.write_bytes(data)
    if recon_path is not None:
        write_image(recon_path, packet.x_hat)
    return ImageResult(width, height, len(data), bpp(8 * len(data), width, height),
                       psnr_rgb_db(x, packet.x_hat), enc_s)


def split_image_file(data: bytes, where: str) -> tuple[bytes, bytes]:
    """(sequence header bytes, frame bytes) of an image file."""
    if data[:4] != IMAGE_MAGIC:
        raise BitstreamError(f"{where}: not a vidcodec image file (bad magic {data[:4]!r})")
    if len(data) < 8:
        raise BitstreamError(f"{where}: truncated at field 'header_length'")
    (header_length,) = struct.unpack_from("<I", data, 4)
    if 8 + header_length > len(data):
        raise BitstreamError(f"{where}: truncated (header_length {header_length}, file has {len(data)} bytes)")
    return data[8:8 + header_length], data[8 + header_length:]


def decode_image(in_path: Path, out_path: Path, checkpoint: Path | None = None,
                 force: bool = False) -> torch.Tensor:
    """Decode an image file into ``out_path`` (PNG, or YUV 4:2:0 for .yuv); returns the picture.
    ``force``: replace an existing ``out_path`` (never ``in_path``)."""
    in_path = Path(in_path)
    if not in_path.is_file():
        raise BitstreamError(f"{in_path} not found")
    check_output_file(Path(out_path), [in_path], force, "-o")
    header_bytes, frame = split_image_file(in_path.read_bytes(), str(in_path))
    header = SequenceHeader.read(header_bytes, f"{in_path} (header)")
    if header.num_frames != 1 or header.intra_period != 1:
        raise BitstreamError(f"{in_path}: the header announces {header.num_frames} frames with intra period "
                             f"{header.intra_period}, not one picture")
    x_hat = decoder_for_stream(header, header_bytes, checkpoint).decode(frame, f"{in_path} (frame)")
    write_image(out_path, x_hat)
    return x_hat


def result_line(result: ImageResult) -> str:
    return json.dumps({"width": result.width, "height": result.height, "bytes": result.bytes,
                       "bpp": round(result.bpp, 5), "psnr_rgb": round(result.psnr_rgb, 3),
                       "enc_s": round(result.enc_s, 3)})
