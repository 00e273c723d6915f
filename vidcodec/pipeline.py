"""Sequence-level encoding and decoding: files in, files out.

Output layout of ``encode_sequence``::

    OUT/sequence.hdr        SequenceHeader (bitstream/syntax.py)
    OUT/frames/NNNNNN.bin   one file per frame, NNNNNN = poc
    OUT/rd.jsonl            one line of rate-distortion figures per frame
    OUT/summary.json        averages for I, P and all frames, config, model, versions

Everything is written into a hidden sibling directory first and renamed to OUT at the very end, so
an interrupted run never leaves a directory that looks complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import (
    STREAM_NONCE_BYTES,
    ModelRef,
    SequenceHeader,
    frame_file_name,
    read_frame,
    sequence_id,
)
from vidcodec.config import CodecConfig
from vidcodec.decoder import Decoder
from vidcodec.encoder import Encoder
from vidcodec.entropy.lattice_coder import coding_parameters, coding_scope
from vidcodec.errors import CheckpointError, ConfigError, OutputError, VidcodecError
from vidcodec.io.color import rgb_to_yuv420, yuv420_to_rgb
from vidcodec.io.output_paths import check_output_dir, check_output_file, is_within, staged_file, staged_output
from vidcodec.io.yuv import SequenceGeometry, YuvReader, YuvWriter, check_frame_count
from vidcodec.models.registry import MODELS, LoadedModel, load_model, shipped_weights_file
from vidcodec.quant.registry import QUANTIZER_NAMES, QUANTIZERS
from vidcodec.rd_log import measured_frame_record, summarize, write_rd_files
from vidcodec.tools import QUANT_SCOPES, CodingTools, ShiftSettings

HEADER_NAME = "sequence.hdr"
FRAMES_DIR = "frames"


@dataclass
class CodecModels:
    """The models of a stream: I-frames by ``intra``, P-frames by ``inter`` (often one and the same)."""

    intra: LoadedModel
    inter: LoadedModel

    @classmethod
    def single(cls, model: LoadedModel) -> CodecModels:
        return cls(model, model)

    @property
    def pad_multiple(self) -> int:
        return math.lcm(self.intra.codec.pad_multiple, self.inter.codec.pad_multiple)

    def attach_tools(self, tools: CodingTools) -> None:
        """Attach the tools to both models, refusing tools that would act on no latent of either (e.g.
        --quant oct on an image coded by x265-intra): silently coding without them would mislead."""
        roles = set(self.intra.codec.latent_coders) | set(self.inter.codec.latent_coders)
        names = list(dict.fromkeys((self.intra.model_id, self.inter.model_id)))
        models = " and ".join(names) + (" code" if len(names) > 1 else " codes")
        scopes = {"the lattice quantizer": tools.quant_roles if tools.lattice is not None else None,
                  "the latent shift": tools.shift.roles if tools.shift is not None else None}
        for tool, scope in scopes.items():
            if scope is not None and not roles & scope:
                raise ConfigError(f"{tool} would act on no latent: {models} "
                                  f"{', '.join(sorted(roles)) or 'no learned latent'}, the scope is "
                                  f"{', '.join(sorted(scope))}")
        if tools.refine is not None and not roles:
            raise ConfigError(f"latent refinement would act on no latent: {models} no learned latent")
        for model in {id(self.intra): self.intra, id(self.inter): self.inter}.values():
            model_tools = tools
            if tools.refine is not None and tools.refine.lmbda is None and model.codec.latent_coders:
                model_tools = dataclasses.replace(tools, refine=dataclasses.replace(
                    tools.refine, lmbda=training_lambda(model)))
            model.codec.attach_tools(model_tools)


def training_lambda(model: LoadedModel) -> float:
    """The lambda ``model`` was last trained with (its checkpoint's provenance): the trade-off of its
    latent refinement (latent_refinement.py) unless --refine-lambda names one."""
    lmbda = model.provenance.get("train_config", {}).get("lmbda")
    if not isinstance(lmbda, (int, float)) or lmbda <= 0:
        raise ConfigError(f"latent refinement needs the rate-distortion trade-off of {model.model_id} "
                          f"({model.source}): its checkpoint records no training lambda; pass --refine-lambda "
                          "(CompressAI's: 0.0018, 0.0035, 0.0067, 0.013 for q1..q4)")
    return float(lmbda)


def load_models(config: CodecConfig) -> CodecModels:
    """The inter model (and the weights) of ``config``, and its intra model (the same one unless
    intra_model / intra_quality / intra_checkpoint say otherwise)."""
    inter = load_model(config.model, config.quality, config.checkpoint, config.pretrained)
    if not config.separate_intra:
        return CodecModels.single(inter)
    quality = None if config.intra_checkpoint else (config.intra_quality or config.quality)
    intra = load_model(config.intra_model or config.model, quality, config.intra_checkpoint,
                       config.pretrained and not config.intra_checkpoint)
    return CodecModels(intra, inter)


@dataclass
class EncodeResult:
    out_dir: Path
    records: list[dict]
    summary: dict


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def encode_sequence(
    reader: YuvReader,
    out_dir: Path,
    config: CodecConfig,
    num_frames: int | None = None,
    recon_path: Path | None = None,
    force: bool = False,
    progress: bool = True,
    models: CodecModels | None = None,
    run_info: dict | None = None,
) -> EncodeResult:
    """Encode ``num_frames`` frames of ``reader`` into ``out_dir`` (see module docstring);
    ``models``: already loaded models (default: load_models(config))."""
    geometry = reader.geometry
    num_frames = check_frame_count(num_frames, reader.num_frames, reader.path)
    check_encode_outputs(reader.path, Path(out_dir), recon_path, force)
    torch.set_num_threads(config.num_threads)
    if models is None:
        models = load_models(config)
    if not models.inter.codec.inter_part_names and config.intra_period != 1 and num_frames > 1:
        raise ConfigError(f"model '{models.inter.model_id}' is an image codec: it codes I-frames only. Pass "
                          "--intra-period 1, or use it as --intra-model of a video model")
    models.attach_tools(config.coding_tools())
    header = sequence_header(config, models, geometry, num_frames, content_nonce(reader, num_frames))
    header_bytes = header.write()
    encoder = Encoder(models.intra.codec, models.inter.codec, header)
    verifier = Decoder(models.intra.codec, models.inter.codec, header, header_bytes) if config.verify else None
    records: list[dict] = []
    with staged_output(out_dir, force, [reader.path]) as staging, _optional_writer(recon_path, geometry) as recon:
        (staging / FRAMES_DIR).mkdir()
        _atomic_write_bytes(staging / HEADER_NAME, header_bytes)
        bar = _progress_bar(num_frames, f"encode {reader.path.name}", progress)
        for poc in range(num_frames):
            frame = reader.read_frame(poc)
            x = yuv420_to_rgb(frame, geometry.bit_depth)
            start = time.perf_counter()
            packet = encoder.encode(poc, x)
            enc_s = time.perf_counter() - start
            frame_path = staging / FRAMES_DIR / frame_file_name(poc)
            frame_path.write_bytes(packet.data)
            dec_s = None
            if verifier is not None:
                start = time.perf_counter()
                x_dec = verifier.decode(frame_path.read_bytes(), str(frame_path.name))
                dec_s = time.perf_counter() - start
                if not torch.equal(x_dec, packet.x_hat):
                    raise VidcodecError(
                        f"poc {poc}: decoder output differs from the encoder's reconstruction "
                        "(non-deterministic kernels?); the stream would not decode bit-exactly"
                    )
            frame_hat = rgb_to_yuv420(packet.x_hat, geometry.bit_depth)
            if recon is not None:
                recon.write_frame(frame_hat)
            record = measured_frame_record(
                poc=poc,
                frame_type=packet.frame_type,
                bits=8 * frame_path.stat().st_size,  # what a decoder reads, headers included
                part_bits=packet.part_bits,
                frame=frame,
                frame_hat=frame_hat,
                bit_depth=geometry.bit_depth,
                x=x,
                x_hat=packet.x_hat,
                enc_s=enc_s,
                dec_s=dec_s,
                quantizer=config.quant,
                shift=packet.shift,
                refine=packet.refine,
                ms_ssim=config.ms_ssim,
            )
            records.append(record)
            _update_bar(bar, records)
        bar.close()
        model_info = _model_info(models.inter)
        if models.intra is not models.inter:
            model_info["intra"] = _model_info(models.intra)
        summary = summarize(records, config=config.to_dict(), model=model_info, sequence={
            "path": str(reader.path),
            "width": geometry.width,
            "height": geometry.height,
            "bit_depth": geometry.bit_depth,
            "fps": geometry.fps,
            "frames": num_frames,
        }, run_info=run_info or {})
        write_rd_files(staging, records, summary)
    return EncodeResult(Path(out_dir), records, summary)


def check_encode_outputs(source: Path, out_dir: Path, recon_path: Path | None, force: bool) -> None:
    """Refuse, before any coding, outputs that would replace the source or be lost (see io/output_paths.py)."""
    check_output_dir(out_dir, [source], force)
    if recon_path is None:
        return
    check_output_file(recon_path, [source], force, "--recon")
    if is_within(recon_path, out_dir):
        raise OutputError(f"--recon {recon_path} is inside --out {out_dir}, which the stream directory replaces "
                          "at the end; write the reconstruction elsewhere")


def content_nonce(reader: YuvReader, num_frames: int) -> bytes:
    """The stream_nonce of an encode: a digest of the pictures it codes. Streams of different pictures
    coded with the same settings get different sequence ids (a frame of one is refused by the other);
    coding the same pictures again gives the same files, so evaluations stay reproducible. Reading
    the frames twice costs far less than coding them."""
    digest = hashlib.sha256()
    for poc in range(num_frames):
        frame = reader.read_frame(poc)
        for plane in (frame.y, frame.u, frame.v):
            digest.update(plane.tobytes())
    return digest.digest()[:STREAM_NONCE_BYTES]


def sequence_header(config: CodecConfig, models: CodecModels, geometry: SequenceGeometry,
                    num_frames: int, stream_nonce: bytes | None = None) -> SequenceHeader:
    """The sequence header of a stream coded with ``config`` and ``models``; ``stream_nonce``: see
    content_nonce (None: a random one)."""
    lattice_name = QUANTIZERS[config.quant].lattice
    shift = config.shift_settings()
    return SequenceHeader(
        width=geometry.width,
        height=geometry.height,
        bit_depth=geometry.bit_depth,
        fps=geometry.fps,
        num_frames=num_frames,
        intra_period=config.intra_period,
        intra_model=_model_ref(models.intra),
        inter_model=_model_ref(models.inter),
        pad_multiple=models.pad_multiple,
        pad_margin=config.pad_margin,
        quantizer=config.quant,
        quant_params=coding_parameters(lattice_name, config.quant_scope) if lattice_name else b"",
        latent_shift=shift.scope_mask if shift else 0,
        shift_groups=shift.groups if shift else 1,
        shift_candidates=shift.candidates if shift else (),
        num_threads=config.num_threads,
        **({"stream_nonce": stream_nonce} if stream_nonce is not None else {}),
    )


def decoder_for_stream(header: SequenceHeader, header_bytes: bytes, checkpoint: Path | None = None,
                       intra_checkpoint: Path | None = None) -> Decoder:
    """A decoder of the stream whose sequence header is ``header_bytes``: its models, tools and threads."""
    torch.set_num_threads(header.num_threads)
    tools = stream_tools(header)
    models = load_models_for_stream(header, checkpoint, intra_checkpoint)
    models.attach_tools(tools)
    return Decoder(models.intra.codec, models.inter.codec, header, header_bytes)


def _model_ref(model: LoadedModel) -> ModelRef:
    return ModelRef(model.model_id, model.quality, model.checkpoint_hash)


def _model_info(model: LoadedModel) -> dict:
    return {
        "model_id": model.model_id,
        "quality": model.quality,
        "checkpoint_hash": model.checkpoint_hash.hex(),
        "source": model.source,
        "trained": bool(model.provenance),
        "provenance": model.provenance,
    }


@contextmanager
def _optional_writer(path: Path | None, geometry: SequenceGeometry) -> Iterator[YuvWriter | None]:
    """A YUV writer into a hidden name, renamed to ``path`` only on success."""
    if path is None:
        yield None
        return
    with staged_file(Path(path)) as tmp:
        writer = YuvWriter(tmp, geometry)
        try:
            yield writer
        finally:
            writer.close()


def _progress_bar(total: int, description: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="frame", disable=not enabled, leave=True)


def _update_bar(bar, records: list[dict]) -> None:
    count = len(records)
    bar.set_postfix(
        bpp=f"{sum(r['bpp'] for r in records) / count:.4f}",
        psnr_rgb=f"{sum(r['psnr_rgb'] for r in records) / count:.2f}dB",
        refresh=False,
    )
    bar.update(1)


def read_stream_header(stream_dir: Path) -> tuple[SequenceHeader, bytes]:
    path = Path(stream_dir) / HEADER_NAME
    if not Path(stream_dir).is_dir():
        raise BitstreamError(f"{stream_dir} is not a directory (expected the output of encode_sequence)")
    if not path.is_file():
        raise BitstreamError(f"{path} not found: {stream_dir} is not a vidcodec stream directory")
    data = path.read_bytes()
    return SequenceHeader.read(data, str(path)), data


def frame_summaries(stream_dir: Path) -> list[dict]:
    """Per frame file of a stream: poc, type, total and header bytes (all but the entropy-coded
    parts), part lengths and shift indexes; parsed and CRC-checked, not decoded."""
    header, header_bytes = read_stream_header(stream_dir)
    stream_id = sequence_id(header_bytes)
    summaries = []
    for poc in range(header.num_frames):
        path = Path(stream_dir) / FRAMES_DIR / frame_file_name(poc)
        if not path.is_file():
            raise BitstreamError(f"{path} missing: sequence.hdr announces {header.num_frames} frames")
        data = path.read_bytes()
        frame, _ = read_frame(data, str(path), stream_id)
        summaries.append({"poc": frame.poc, "type": frame.frame_type, "bytes": len(data),
                          "header_bytes": len(data) - sum(frame.part_lengths),
                          "part_lengths": list(frame.part_lengths), "shift_indexes": list(frame.shift_indexes)})
    return summaries


def load_model_for_stream(ref: ModelRef, checkpoint: Path | None) -> LoadedModel:
    """Find the weights a stream names (``ref``) and check them against its checkpoint hash."""
    if ref.model_id in MODELS and MODELS[ref.model_id].weightless:
        model = load_model(ref.model_id, quality=ref.quality)
    elif checkpoint is not None:
        model = load_model(ref.model_id, checkpoint=checkpoint)
    elif ref.quality and shipped_weights_file(ref.model_id, ref.quality) is not None:
        model = load_model(ref.model_id, quality=ref.quality)
    elif ref.quality and ref.model_id in MODELS and MODELS[ref.model_id].zoo_name:
        # A named rate point without shipped weights: the CompressAI zoo's (the hash check below
        # refuses other weights).
        model = load_model(ref.model_id, quality=ref.quality, pretrained=True)
    else:
        raise CheckpointError(
            f"the stream was encoded with a custom checkpoint of model '{ref.model_id}' "
            f"(hash {ref.checkpoint_hash.hex()}); pass --checkpoint PATH"
        )
    if model.checkpoint_hash != ref.checkpoint_hash:
        raise CheckpointError(
            f"wrong weights: the stream needs model '{ref.model_id}' with checkpoint hash "
            f"{ref.checkpoint_hash.hex()}, but {model.source} has {model.checkpoint_hash.hex()}; "
            "pass --checkpoint with the file used for encoding"
        )
    return model


def load_models_for_stream(header: SequenceHeader, checkpoint: Path | None = None,
                           intra_checkpoint: Path | None = None) -> CodecModels:
    """The stream's inter model (weights: ``checkpoint``) and intra model (``intra_checkpoint``;
    the inter model itself when the header names the same weights)."""
    inter = load_model_for_stream(header.inter_model, checkpoint)
    if header.intra_model == header.inter_model and intra_checkpoint is None:
        return CodecModels.single(inter)
    try:
        intra = load_model_for_stream(header.intra_model, intra_checkpoint)
    except CheckpointError as error:
        raise CheckpointError(f"I-frames: {error} (for the intra model: --intra-checkpoint PATH)") from None
    return CodecModels(intra, inter)


def stream_tools(header: SequenceHeader) -> CodingTools:
    """The coding tools the stream was made with (quantizer, latent shift), refusing tables this
    build cannot reproduce."""
    # Canonical names only: the field is syntax, an alias ("a3*") in it is a foreign stream.
    if header.quantizer not in QUANTIZER_NAMES:
        raise BitstreamError(f"sequence.hdr: unknown quantizer '{header.quantizer}' "
                             f"(this decoder knows {', '.join(QUANTIZER_NAMES)})")
    lattice_name = QUANTIZERS[header.quantizer].lattice
    scope = coding_scope(header.quant_params) if lattice_name else "residual"  # None: reported below
    expected = coding_parameters(lattice_name, scope) if lattice_name and scope in QUANT_SCOPES else b""
    if header.quant_params != expected:
        raise BitstreamError(
            f"sequence.hdr: the stream's lattice table parameters {header.quant_params.hex()} differ from "
            f"this decoder's {expected.hex()}; decode with the vidcodec release that encoded it"
        )
    shift = None
    if header.latent_shift:
        try:
            shift = ShiftSettings(candidates=header.shift_candidates, groups=header.shift_groups,
                                  scope_mask=header.latent_shift)
        except ConfigError as error:
            raise BitstreamError(f"sequence.hdr: {error}") from None
    return CodingTools(lattice=lattice_name, quant_roles=QUANT_SCOPES.get(scope, frozenset()), shift=shift)


def decode_sequence(
    stream_dir: Path,
    output_path: Path,
    checkpoint: Path | None = None,
    progress: bool = True,
    intra_checkpoint: Path | None = None,
    force: bool = False,
) -> int:
    """Decode all frames of ``stream_dir`` into ``output_path`` (.yuv raw or .y4m); returns the
    frame count. ``checkpoint`` / ``intra_checkpoint``: weights of custom (not shipped) models;
    ``force``: replace an existing ``output_path`` (never a file of the stream)."""
    stream_dir = Path(stream_dir)
    header, header_bytes = read_stream_header(stream_dir)
    stream_files = [stream_dir / HEADER_NAME, *sorted((stream_dir / FRAMES_DIR).glob("*.bin"))]
    check_output_file(Path(output_path), stream_files, force, "-o")
    decoder = decoder_for_stream(header, header_bytes, checkpoint, intra_checkpoint)
    geometry = SequenceGeometry(header.width, header.height, header.bit_depth, header.fps)
    bar = _progress_bar(header.num_frames, f"decode {stream_dir.name}", progress)
    with _optional_writer(Path(output_path), geometry) as writer:
        for poc in range(header.num_frames):
            frame_path = stream_dir / FRAMES_DIR / frame_file_name(poc)
            if not frame_path.is_file():
                raise BitstreamError(
                    f"{frame_path} missing: sequence.hdr announces {header.num_frames} frames"
                )
            x_hat = decoder.decode(frame_path.read_bytes(), f"{FRAMES_DIR}/{frame_path.name}")
            writer.write_frame(rgb_to_yuv420(x_hat, header.bit_depth))
            bar.update(1)
    bar.close()
    return header.num_frames
