"""Traditional-codec anchors (x264, x265, SVT-AV1) through PyAV, logged like the learned codec.

``encode_anchor`` codes a YuvReader's frames in the low-delay setting of the learned codec's
evaluation (SSF / CompressAI anchors: medium, zerolatency, no B-frames):

* I and P frames only, no lookahead (x264 tune zerolatency, x265 its settings by hand, SVT-AV1
  pred-struct 1 = low delay): the encoder never sees a future frame. Key frames (IDR / AV1 key,
  closed GOP) exactly at poc % intra_period == 0 (intra_period -1: only poc 0), no scene cuts;
* preset medium (SVT-AV1: SVTAV1_PRESET), tune psnr (no psycho-visual tuning; x264/x265 AQ off),
  CRF rate control, one encoder thread (ENCODER_THREADS: the stream does not depend on the host);
* 4:2:0 8-bit (yuv420p) or 10-bit (yuv420p10le), as the input.
Rate points: quality 1..4 (1 = lowest rate) -> CRF_LADDER, or an explicit ``crf``.

Bits: a frame's ``bits`` = 8 x its coded packet's size. The packets are concatenated unchanged into
OUT/stream.<ext> (Annex-B H.264/HEVC, low-overhead AV1 OBUs), so sum(bits) == 8 x file size, the
real cost. No container is written: container overhead is excluded (bits = coded packets), as in
CompressAI's and DCVC's anchor tables. x264's version/options SEI (~700 bytes in poc 0, useless
to a decoder, dominant on small clips) is removed before writing (x265: info=0). There is no part
breakdown: bits_intra_* etc. are 0 and bits_header == bits.

Metrics mirror pipeline.encode_sequence: the stream file is decoded with PyAV; psnr_y/u/v/yuv on
the decoded vs original YUV, psnr_rgb and ms_ssim_rgb on io.color.yuv420_to_rgb of both.
enc_s: seconds of the frame's encode call (the final flush counts for the last frame); dec_s:
seconds decoding the frame's packets, one decoder thread.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidcodec.errors import ConfigError, VidcodecError
from vidcodec.io.color import yuv420_to_rgb
from vidcodec.io.yuv import YuvFrame, YuvReader, check_frame_count
from vidcodec.pipeline import EncodeResult, staged_output  # same staging and --force rules
from vidcodec.rd_log import measured_frame_record, summarize, write_rd_files

ENCODER_THREADS = 1
# SVT-AV1 presets: lower = slower. Measured here (416x240, one thread): x264 medium 2-4 ms/frame,
# x265 medium 6-13, SVT-AV1 preset 8 4-6, preset 6 7-12: preset 6 has x265 medium's effort.
SVTAV1_PRESET = 6
# quality 1..4 -> CRF. x264/x265: the CRFs of the published CompressAI x264/x265 UVG points, so the
# harness can be checked against them. SVT-AV1's CRF (0..63) is on another scale: its points gave
# PSNR-RGB within 0.3 dB of x265's at the same quality on two generated 416x240 clips.
CRF_LADDER: dict[str, tuple[int, ...]] = {
    "x264": (37, 32, 27, 22),
    "x265": (37, 32, 27, 22),
    "svtav1": (58, 49, 39, 29),
}
PIX_FMTS = {8: "yuv420p", 10: "yuv420p10le"}
OPTION_PROBLEM = re.compile(r"option|invalid value", re.IGNORECASE)


class EncoderUnavailableError(VidcodecError):
    """The FFmpeg build inside PyAV lacks the anchor's encoder."""


@dataclass(frozen=True)
class AnchorCodec:
    name: str  # anchor id: x264 | x265 | svtav1
    encoder: str  # FFmpeg encoder
    stream_format: str  # FFmpeg raw format of the elementary stream, for decoding it back
    suffix: str  # stream file suffix
    max_crf: int
    library: str  # file name prefix of the codec library bundled in PyAV's wheel


CODECS = {
    "x264": AnchorCodec("x264", "libx264", "h264", ".264", 51, "libx264"),
    "x265": AnchorCodec("x265", "libx265", "hevc", ".265", 51, "libx265"),
    "svtav1": AnchorCodec("svtav1", "libsvtav1", "obu", ".obu", 63, "libSvtAv1Enc"),
}


def encoder_options(codec_name: str, crf: int, intra_period: int) -> dict[str, str]:
    """The FFmpeg options of an anchor (all settings besides size, rate and pixel format)."""
    if codec_name == "x264":
        keyint = "infinite" if intra_period == -1 else str(intra_period)
        # x264 accepts a psycho-visual tune plus zerolatency (no lookahead, no mbtree, no B).
        return {"preset": "medium", "tune": "psnr,zerolatency", "crf": str(crf),
                "x264-params": f"keyint={keyint}:scenecut=0:bframes=0:threads={ENCODER_THREADS}"}
    if codec_name == "x265":
        # x265 takes one tune: psnr, plus what its zerolatency tune sets. pools=none = one thread.
        return {"preset": "medium", "tune": "psnr", "crf": str(crf),
                "x265-params": f"keyint={intra_period}:scenecut=0:open-gop=0:bframes=0:rc-lookahead=0:cutree=0:"
                               "frame-threads=1:pools=none:info=0:log-level=error"}
    if codec_name == "svtav1":
        # pred-struct=1: low delay; irefresh-type=2: key frames (closed GOP); tune=1: PSNR.
        return {"preset": str(SVTAV1_PRESET), "crf": str(crf),
                "svtav1-params": f"pred-struct=1:keyint={intra_period}:irefresh-type=2:scd=0:tune=1:"
                                 f"lp={ENCODER_THREADS}"}
    raise ConfigError(f"codec='{codec_name}' (expected one of {', '.join(CODECS)})")


def available_codecs() -> list[str]:
    """Anchors whose encoder is in the FFmpeg build bundled with PyAV."""
    return [name for name in CODECS if _has_encoder(CODECS[name].encoder)]


def _has_encoder(encoder: str) -> bool:
    try:
        av.codec.Codec(encoder, "w")
    except Exception:  # PyAV raises UnknownCodecError (or ValueError in older releases)
        return False
    return True


def library_version(codec_name: str) -> str:
    """Encoder and versions, e.g. "libx264 (so.165), libavcodec 62.28.102, PyAV 18.1.0".

    The codec library's version is the soname of the copy bundled in PyAV's wheel (x264 API build,
    x265 build number, SVT-AV1 release); "unknown" where PyAV uses a system FFmpeg."""
    codec = CODECS[codec_name]
    libs_dir = Path(av.__file__).resolve().parent.parent / "av.libs"
    found = sorted(libs_dir.glob(f"{codec.library}-*.so.*")) if libs_dir.is_dir() else []
    version = found[0].name.split(".so.", 1)[1] if found else "unknown"
    avcodec = ".".join(str(n) for n in av.library_versions["libavcodec"])
    return f"{codec.encoder} (so.{version}), libavcodec {avcodec}, PyAV {av.__version__}"


def resolve_crf(codec_name: str, quality: int | None, crf: int | None) -> int:
    """CRF of a rate point: ``crf`` when given, else CRF_LADDER[codec_name][quality - 1]."""
    if codec_name not in CODECS:
        raise ConfigError(f"codec='{codec_name}' (expected one of {', '.join(CODECS)})")
    ladder = CRF_LADDER[codec_name]
    if crf is None:
        if not (isinstance(quality, int) and 1 <= quality <= len(ladder)):
            raise ConfigError(f"quality={quality} (expected 1..{len(ladder)}, or pass crf)")
        return ladder[quality - 1]
    max_crf = CODECS[codec_name].max_crf
    if not (isinstance(crf, int) and 0 <= crf <= max_crf):
        raise ConfigError(f"crf={crf} (expected an integer in 0..{max_crf} for {codec_name})")
    return crf


def _to_av_frame(frame: YuvFrame, pix_fmt: str, poc: int) -> av.VideoFrame:
    height, width = frame.y.shape
    # PyAV's planar 4:2:0 ndarray layout: the three planes back to back, viewed as (3H/2, W).
    packed = np.concatenate([frame.y.ravel(), frame.u.ravel(), frame.v.ravel()]).reshape(height * 3 // 2, width)
    av_frame = av.VideoFrame.from_ndarray(packed, format=pix_fmt)
    av_frame.pts = poc
    return av_frame


def _from_av_frame(av_frame: av.VideoFrame, pix_fmt: str, width: int, height: int) -> YuvFrame:
    if av_frame.format.name != pix_fmt or (av_frame.width, av_frame.height) != (width, height):
        raise VidcodecError(f"the decoder returned {av_frame.format.name} {av_frame.width}x{av_frame.height}, "
                            f"expected {pix_fmt} {width}x{height}")
    flat = av_frame.to_ndarray().ravel()
    luma, chroma = width * height, width * height // 4
    return YuvFrame(flat[:luma].reshape(height, width).copy(),
                    flat[luma : luma + chroma].reshape(height // 2, width // 2).copy(),
                    flat[luma + chroma :].reshape(height // 2, width // 2).copy())


def _open_encoder(codec: AnchorCodec, geometry, pix_fmt: str, options: dict[str, str]) -> av.CodecContext:
    context = av.CodecContext.create(codec.encoder, "w")
    context.width, context.height, context.pix_fmt = geometry.width, geometry.height, pix_fmt
    rate = Fraction(geometry.fps).limit_denominator(1001)
    context.framerate, context.time_base = rate, 1 / rate
    context.thread_count = ENCODER_THREADS
    context.options = options
    # The wrappers only warn about an unknown or bad x26*-params / svtav1-params entry and go on;
    # an anchor must not run with a silently dropped setting, so such warnings are errors here.
    previous_level = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as logs:
            context.open()
    except av.FFmpegError as error:
        raise VidcodecError(f"{codec.encoder} refused its settings {options}: {error}") from None
    finally:
        av.logging.set_level(previous_level)
    problems = [message.strip() for level, _, message in logs
                if level <= av.logging.ERROR or OPTION_PROBLEM.search(message)]
    if problems:
        raise VidcodecError(f"{codec.encoder} did not accept its settings {options}: {'; '.join(problems)}")
    return context


def encode_anchor(
    codec_name: str,
    reader: YuvReader,
    out_dir: Path,
    quality: int | None = None,
    num_frames: int | None = None,
    intra_period: int = 8,
    *,
    crf: int | None = None,
    options: dict[str, str] | None = None,
    force: bool = False,
    run_info: dict | None = None,
) -> EncodeResult:
    """Encode ``num_frames`` frames of ``reader`` with an anchor into ``out_dir`` (see module doc).

    out_dir gets stream<suffix>, rd.jsonl (rd_log schema, quantizer = codec_name) and summary.json;
    everything is staged in a hidden sibling and renamed at the end, so summary.json present means
    finished. ``options`` replaces values of encoder_options() keys (experiments; in summary.json).
    Raises ConfigError (unknown codec, quality, crf, intra_period), EncoderUnavailableError, and
    VidcodecError when the encoder or decoder fails.
    """
    crf = resolve_crf(codec_name, quality, crf)
    if not isinstance(intra_period, int) or intra_period == 0 or intra_period < -1:
        raise ConfigError(f"intra_period={intra_period} (expected -1 or >= 1)")
    codec = CODECS[codec_name]
    if not _has_encoder(codec.encoder):
        raise EncoderUnavailableError(f"encoder {codec.encoder} is not in the FFmpeg build of PyAV {av.__version__}; "
                                      f"anchors available here: {', '.join(available_codecs()) or 'none'}")
    geometry = reader.geometry
    pix_fmt = PIX_FMTS[geometry.bit_depth]
    num_frames = check_frame_count(num_frames, reader.num_frames, reader.path)
    all_options = encoder_options(codec_name, crf, intra_period)
    unknown = sorted(set(options or {}) - set(all_options))
    if unknown:
        raise ConfigError(f"options {unknown} (expected keys among {', '.join(all_options)})")
    all_options.update(options or {})
    # SVT-AV1 prints its banner to stderr unless told otherwise; respect a user's own setting.
    os.environ.setdefault("SVT_LOG", "1")
    with staged_output(Path(out_dir), force) as staging:
        stream_path = staging / f"stream{codec.suffix}"
        packet_sizes, key_flags, enc_times = _encode_stream(codec, reader, geometry, pix_fmt, all_options,
                                                            num_frames, stream_path)
        if sum(packet_sizes) != stream_path.stat().st_size:  # the promise of the module docstring
            raise VidcodecError(f"{stream_path.name}: packets and file size disagree")
        records = []
        decoded = _decode_stream(codec, stream_path, pix_fmt, geometry.width, geometry.height)
        for poc, (frame_hat, dec_s) in enumerate(decoded):
            if poc >= num_frames:
                raise VidcodecError(f"{codec.stream_format} decoder returned more than {num_frames} frames")
            frame = reader.read_frame(poc)
            x, x_hat = yuv420_to_rgb(frame, geometry.bit_depth), yuv420_to_rgb(frame_hat, geometry.bit_depth)
            bits = 8 * packet_sizes[poc]
            records.append(measured_frame_record(
                poc=poc, frame_type="I" if key_flags[poc] else "P", bits=bits, part_bits={}, frame=frame,
                frame_hat=frame_hat, bit_depth=geometry.bit_depth, x=x, x_hat=x_hat, enc_s=enc_times[poc],
                dec_s=dec_s, quantizer=codec_name,
            ))
        if len(records) != num_frames:
            raise VidcodecError(f"{stream_path.name} decoded to {len(records)} frames, expected {num_frames}")
        config = {"codec": codec_name, "encoder": codec.encoder, "quality": quality, "crf": crf,
                  "intra_period": intra_period, "threads": ENCODER_THREADS, "pix_fmt": pix_fmt,
                  "options": all_options, "stream_file": stream_path.name,
                  "bits": "8 x coded packet size; no container; x264 version SEI removed"}
        sequence = {"path": str(reader.path), "width": geometry.width, "height": geometry.height,
                    "bit_depth": geometry.bit_depth, "fps": geometry.fps, "frames": num_frames}
        summary = summarize(records, config=config, model={"id": codec_name, "library": library_version(codec_name)},
                            sequence=sequence, run_info=run_info or {})
        write_rd_files(staging, records, summary)
    return EncodeResult(Path(out_dir), records, summary)


def _encode_stream(codec: AnchorCodec, reader: YuvReader, geometry, pix_fmt: str, options: dict[str, str],
                   num_frames: int, stream_path: Path) -> tuple[list[int], list[bool], list[float]]:
    """Encode and write the stream; per poc: packet size in bytes, key frame flag, encode seconds."""
    context = _open_encoder(codec, geometry, pix_fmt, options)
    # filter_units drops NAL type 6 (SEI): x264 writes only its version SEI with these settings.
    sei_filter = (av.bitstream.BitStreamFilterContext("filter_units=remove_types=6", "h264")
                  if codec.name == "x264" else None)
    packets: dict[int, tuple[int, bool]] = {}
    enc_times = [0.0] * num_frames

    def write(new_packets, stream) -> None:
        for packet in new_packets:
            for out in sei_filter.filter(packet) if sei_filter else [packet]:
                if out.pts is None or not 0 <= out.pts < num_frames or out.pts in packets:
                    # Low delay gives one packet per frame in display order; anything else
                    # would make per-frame bits meaningless.
                    raise VidcodecError(f"{codec.encoder}: unexpected packet (pts {out.pts}) in low-delay mode")
                packets[out.pts] = (out.size, bool(out.is_keyframe))
                stream.write(bytes(out))

    try:
        with open(stream_path, "wb") as stream:
            for poc in range(num_frames):
                av_frame = _to_av_frame(reader.read_frame(poc), pix_fmt, poc)
                start = time.perf_counter()
                new_packets = context.encode(av_frame)
                enc_times[poc] = time.perf_counter() - start
                write(new_packets, stream)
            start = time.perf_counter()
            new_packets = context.encode(None)
            enc_times[-1] += time.perf_counter() - start
            write(new_packets, stream)
    except av.FFmpegError as error:
        raise VidcodecError(f"{codec.encoder} failed: {error}") from None
    if len(packets) != num_frames:
        raise VidcodecError(f"{codec.encoder} returned {len(packets)} packets for {num_frames} frames")
    sizes, key_flags = zip(*(packets[poc] for poc in range(num_frames)))
    return list(sizes), list(key_flags), enc_times


def _decode_stream(codec: AnchorCodec, stream_path: Path, pix_fmt: str, width: int, height: int):
    """Yield (YuvFrame, decode seconds) per frame of the stream file, in display order."""
    try:
        with av.open(str(stream_path), format=codec.stream_format) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            pending_s = 0.0
            for packet in container.demux(stream):
                start = time.perf_counter()
                frames = packet.decode()  # an empty packet at the end flushes the decoder
                pending_s += time.perf_counter() - start
                for av_frame in frames:
                    yield _from_av_frame(av_frame, pix_fmt, width, height), pending_s
                    pending_s = 0.0
    except av.FFmpegError as error:
        raise VidcodecError(f"decoding {stream_path.name} failed: {error}") from None


# Published anchors (data in published/, sources in published/README.md).
PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
# CompressAI's files give bitrates in kbps of UVG 1080p at 120 fps (averaged over its sequences).
UVG_PIXELS_PER_SECOND = 1920 * 1080 * 120
DCVC_METRICS = {"psnr-yuv": "ave_all_frame_psnr", "psnr-y": "ave_all_frame_psnr_y",
                "psnr-u": "ave_all_frame_psnr_u", "psnr-v": "ave_all_frame_psnr_v"}


def list_published() -> list[str]:
    """Names of the published anchors load_published() reads."""
    return sorted(path.stem for path in PUBLISHED_DIR.glob("*.json"))


def load_published(name: str, metric: str | None = None, sequence: str | None = None) -> dict:
    """RD points of a published anchor on UVG 1080p, by increasing rate: {"name", "description",
    "metric", "bpp": (N,) float64, "psnr": (N,) float64 dB of ``metric``, "points": qp / q labels}.

    ``metric`` defaults to psnr-rgb where the file has it, else psnr-yuv ((6Y+U+V)/8); they differ
    by > 1 dB. CompressAI-format files: bpp = kbps * 1000 / (1920 * 1080 * 120), assuming averages
    over UVG 1080p at 120 fps (x265 CRF 47..17 then spans 0.002..0.45 bpp). DCVC-format file
    (vtm-17.0-lowdelay-uvg): its per-sequence all-frame averages, averaged with equal weight per
    sequence, or the one sequence file name ``sequence``; it has no RGB metric.
    """
    path = PUBLISHED_DIR / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"published anchor '{name}' (expected one of {', '.join(list_published())})")
    data = json.loads(path.read_text())
    if "results" in data:  # CompressAI format
        if sequence is not None:
            raise ConfigError(f"published anchor '{name}' holds only averages (sequence=None)")
        results = data["results"]
        metric = metric or "psnr-rgb"
        points = results.get("qp", results.get("q"))
        rate_bpp = np.asarray(results["bitrate"], dtype=np.float64) * 1000 / UVG_PIXELS_PER_SECOND
        available = [key for key in results if key.startswith("psnr")]
        psnr = results[metric] if metric in available else None
        description = data.get("description", "")
    else:  # DCVC format: {dataset: {sequence file: {"QQQ": {...}}}}
        metric = metric or "psnr-yuv"
        sequences = data["UVG"]
        if sequence is not None and sequence not in sequences:
            raise ConfigError(f"sequence='{sequence}' (expected one of {', '.join(sequences)})")
        chosen = [sequences[sequence]] if sequence else list(sequences.values())
        points = sorted(chosen[0], key=int)
        rate_bpp = np.array([np.mean([seq[p]["ave_all_frame_bpp"] for seq in chosen]) for p in points])
        available = list(DCVC_METRICS)
        psnr = ([np.mean([seq[p][DCVC_METRICS[metric]] for seq in chosen]) for p in points]
                if metric in DCVC_METRICS else None)
        points = [int(p) for p in points]
        description = "VTM 17.0 low delay, UVG (DCVC anchors)"
    if psnr is None:
        raise ConfigError(f"metric='{metric}' is not in published anchor '{name}' "
                          f"(expected one of {', '.join(available)})")
    order = np.argsort(rate_bpp)
    return {"name": name, "description": description, "metric": metric, "bpp": rate_bpp[order],
            "psnr": np.asarray(psnr, dtype=np.float64)[order], "points": [points[i] for i in order]}
