"""Command line: ``encode_sequence``, ``decode_sequence`` and the umbrella ``vidcodec``.

Errors caused by input (files, flags, streams, checkpoints) print one line ``error: ...`` and exit
with status 2; ``--debug`` shows the traceback instead. Ctrl-C exits with 130 and leaves no output
that looks complete.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from vidcodec.config import DEFAULT_IMAGE_MODEL
from vidcodec.quant.registry import LATTICE_QUANTIZER_NAMES, QUANTIZER_NAMES

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _user_error_types() -> tuple[type[BaseException], ...]:
    from vidcodec.errors import VidcodecError
    from vidcodec.io.yuv import SequenceError

    # OSError: unwritable output, full disk, ... are the environment's, not a bug of ours.
    return (VidcodecError, SequenceError, OSError)


def _run(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if args.debug or not isinstance(error, _user_error_types()):
            traceback.print_exc()
            return 1
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR


# --- encode ---------------------------------------------------------------------------------
def add_encode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sequence", type=Path, help="raw YUV 4:2:0 (.yuv) or .y4m file")
    parser.add_argument("--size", help="WxH when neither the file name nor sequences/*.yaml gives it")
    parser.add_argument("--fps", type=float, help="frame rate (default: from name/dataset, else 30)")
    parser.add_argument("--bit-depth", type=int, choices=(8, 10), help="sample bit depth of a raw file")
    parser.add_argument("--frames", type=int, help="number of frames to code (default: all)")
    parser.add_argument("--config", type=Path, help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--model", help="model id (hybrid-small, dcvc-small-detail, dcvc-small, ssf-small, ssf; "
                                          "image codecs such as mbt2018-mean for --intra-model; "
                                          "vidcodec/models/registry.py). Default: the model a --checkpoint was "
                                          "written for, else configs/default.yaml's (hybrid-small)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--quality", type=int, help="rate point of shipped/zoo weights")
    weights.add_argument("--checkpoint", help="local checkpoint file")
    parser.add_argument("--pretrained", action="store_true", default=None,
                        help="CompressAI zoo weights (ssf, mbt2018-mean)")
    parser.add_argument("--intra-model", help="model of the I-frames: an image codec, x265-intra / svtav1-intra "
                                              "(HEVC / AV1 intra through PyAV), or --model itself for its own "
                                              "I-frame path. Default: mbt2018-mean-small with the shipped "
                                              "dcvc-small(-detail)/ssf-small weights, else --model's own")
    parser.add_argument("--intra-quality", type=int, help="rate point of the I-frames' model (default --quality; "
                                                          "x265-intra/svtav1-intra: its QP, registry.py)")
    parser.add_argument("--intra-checkpoint", help="local checkpoint of the I-frames' model")
    parser.add_argument("--intra-period", type=int, help="I-frame period; -1 = first frame only")
    parser.add_argument("--threads", type=int, dest="num_threads", help="torch threads for coding")
    parser.add_argument("--pad-margin", type=int, help="replicated pixels around the picture (default 8)")
    parser.add_argument("--quant", choices=QUANTIZER_NAMES,
                        help="quantizer of P-frame residual latents (default sq; quant/registry.py)")
    parser.add_argument("--quant-scope", choices=("residual", "residual+motion", "all"),
                        help="latents the lattice quantizer applies to (default residual; ablations)")
    parser.add_argument("--latent-shift", action="store_true", default=None,
                        help="shift decoded latents along the entropy gradient (seed 000, section 4)")
    parser.add_argument("--latent-shift-scope", choices=("residual", "residual+intra"),
                        help="latents to shift (default residual: P-frame residual latents)")
    parser.add_argument("--shift-search", choices=("fast", "brute"), help="encoder step search (default fast)")
    parser.add_argument("--shift-groups", type=int, help="channel groups with their own step (default 1)")
    parser.add_argument("--shift-diagnostics", action="store_true", default=None,
                        help="log corr(entropy gradient, distortion gradient) per frame (slower)")
    add_refine_arguments(parser)
    parser.add_argument("--no-verify", action="store_false", dest="verify", default=None,
                        help="do not decode each frame file after writing it")
    parser.add_argument("--no-ms-ssim", action="store_false", dest="ms_ssim", default=None,
                        help="do not measure MS-SSIM (costly at 1080p; ms_ssim_rgb is null in rd.jsonl)")
    parser.add_argument("--out", type=Path, help="output directory (default: out/<sequence name>)")
    parser.add_argument("--recon", type=Path, help="write the reconstruction as .yuv or .y4m")
    parser.add_argument("--force", action="store_true",
                        help="replace an earlier output: --out directory, --recon file (never the input)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def add_refine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--refine", type=int, dest="refine_iterations", metavar="N",
                        help="encoder-side latent refinement: N gradient steps per latent (default 0 = off; "
                             "about N+1 times the encoding time; no change to the stream's syntax)")
    parser.add_argument("--refine-lr", type=float, dest="refine_learning_rate",
                        help="refinement's Adam step (default 0.005)")
    parser.add_argument("--refine-lambda", type=float,
                        help="refinement's rate-distortion trade-off (default: each model's training lambda)")


def refine_overrides(args: argparse.Namespace) -> dict:
    return {"refine_iterations": args.refine_iterations, "refine_learning_rate": args.refine_learning_rate,
            "refine_lambda": args.refine_lambda}


def model_of_checkpoint(checkpoint: str | Path | None) -> str | None:
    """--model's default when --checkpoint is given: the model the checkpoint was written for (None for
    a plain state dict, which names none: then the config's model)."""
    if checkpoint is None:
        return None
    from vidcodec.models.registry import checkpoint_model_id

    return checkpoint_model_id(checkpoint)


def run_encode(args: argparse.Namespace) -> int:
    from vidcodec.config import load_config
    from vidcodec.io.yuv import YuvReader
    from vidcodec.pipeline import encode_sequence

    overrides = {
        "model": args.model or model_of_checkpoint(args.checkpoint),
        "quality": args.quality,
        "checkpoint": args.checkpoint,
        "pretrained": args.pretrained,
        "intra_model": args.intra_model,
        "intra_quality": args.intra_quality,
        "intra_checkpoint": args.intra_checkpoint,
        "intra_period": args.intra_period,
        "num_threads": args.num_threads,
        "pad_margin": args.pad_margin,
        "quant": args.quant,
        "quant_scope": args.quant_scope,
        "latent_shift": args.latent_shift,
        "latent_shift_scope": args.latent_shift_scope,
        "shift_search": args.shift_search,
        "shift_groups": args.shift_groups,
        "shift_diagnostics": args.shift_diagnostics,
        **refine_overrides(args),
        "verify": args.verify,
        "ms_ssim": args.ms_ssim,
    }
    config = load_config(args.config, overrides)
    if args.checkpoint is not None:
        # A local file is not one of the named rate points: drop the config's default quality.
        config = dataclasses.replace(config, quality=None).validate()
    out_dir = args.out or Path("out") / args.sequence.stem
    with YuvReader(args.sequence, size=args.size, fps=args.fps, bit_depth=args.bit_depth) as reader:
        for warning in reader.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        result = encode_sequence(
            reader,
            out_dir,
            config,
            num_frames=args.frames,
            recon_path=args.recon,
            force=args.force,
            progress=not args.quiet,
            run_info={"command": sys.argv},
        )
    _print_summary(result.summary, result.out_dir)
    return 0


def _print_summary(summary: dict, out_dir: Path) -> None:
    model = summary["model"]
    note = "" if model["trained"] else "  (weights without training provenance)"
    print(f"model {model['model_id']} q{model['quality']} [{model['source']}]{note}")
    if "intra" in model:
        intra = model["intra"]
        print(f"I-frames by {intra['model_id']} q{intra['quality']} [{intra['source']}]")
    print(f"{'frames':>8} {'count':>6} {'bpp':>8} {'PSNR-RGB':>9} {'PSNR-YUV':>9} {'MS-SSIM':>8} "
          f"{'enc s':>7} {'dec s':>7}")
    for kind in ("I", "P", "all"):
        avg = summary["average"][kind]
        if not avg["frames"]:
            continue
        dec_s = f"{avg['dec_s']:7.3f}" if avg["dec_s"] is not None else f"{'-':>7}"
        ms_ssim = f"{avg['ms_ssim_rgb']:8.5f}" if avg["ms_ssim_rgb"] is not None else f"{'-':>8}"
        print(
            f"{kind:>8} {avg['frames']:6d} {avg['bpp']:8.4f} {avg['psnr_rgb']:9.3f} {avg['psnr_yuv']:9.3f} "
            f"{ms_ssim} {avg['enc_s']:7.3f} {dec_s}"
        )
    print(f"wrote {out_dir}/ (sequence.hdr, frames/, rd.jsonl, summary.json)")


# --- decode ---------------------------------------------------------------------------------
def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stream", type=Path, help="directory written by encode_sequence")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .yuv or .y4m")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("--checkpoint", type=Path, help="weights, when the stream used a local checkpoint")
    parser.add_argument("--intra-checkpoint", type=Path,
                        help="weights of the I-frames' model, when the stream names another one than the P-frames'")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_decode(args: argparse.Namespace) -> int:
    from vidcodec.pipeline import decode_sequence

    num_frames = decode_sequence(args.stream, args.output, args.checkpoint, progress=not args.quiet,
                                 intra_checkpoint=args.intra_checkpoint, force=args.force)
    print(f"decoded {num_frames} frames to {args.output}")
    return 0


# --- images -----------------------------------------------------------------------------------
def add_encode_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="PNG (or any image Pillow reads), or one frame of .yuv / .y4m")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the coded file")
    parser.add_argument("--size", help="WxH of a raw .yuv when its name does not give it")
    parser.add_argument("--model", help="image codec, or a video model's I-frame path (default: the model a "
                                        f"--checkpoint was written for, else {DEFAULT_IMAGE_MODEL})")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--quality", type=int, help="rate point of shipped/zoo weights")
    weights.add_argument("--checkpoint", help="local checkpoint file")
    parser.add_argument("--pretrained", action="store_true", default=None, help="CompressAI zoo weights")
    parser.add_argument("--threads", type=int, dest="num_threads", help="torch threads for coding")
    parser.add_argument("--quant", choices=QUANTIZER_NAMES,
                        help="quantizer of the latent (default sq; quant/registry.py)")
    parser.add_argument("--latent-shift", action="store_true", default=None,
                        help="shift the decoded latent along the entropy gradient (seed 000, section 4)")
    parser.add_argument("--shift-search", choices=("fast", "brute"), help="encoder step search (default fast)")
    add_refine_arguments(parser)
    parser.add_argument("--no-verify", action="store_false", dest="verify", default=None,
                        help="do not decode the file after writing it")
    parser.add_argument("--recon", type=Path, help="write the reconstruction (.png, or .yuv for 4:2:0)")
    parser.add_argument("--force", action="store_true",
                        help="replace earlier outputs (-o, --recon; never the input image)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_encode_image(args: argparse.Namespace) -> int:
    from vidcodec.config import load_config
    from vidcodec.image_coding import encode_image, result_line

    model = args.model or model_of_checkpoint(args.checkpoint) or DEFAULT_IMAGE_MODEL
    overrides = {"model": model, "quality": args.quality, "checkpoint": args.checkpoint,
                 "pretrained": args.pretrained, "num_threads": args.num_threads, "quant": args.quant,
                 "latent_shift": args.latent_shift, "shift_search": args.shift_search, "verify": args.verify,
                 **refine_overrides(args)}
    config = load_config(None, overrides)
    if args.checkpoint is not None:
        config = dataclasses.replace(config, quality=None).validate()
    result = encode_image(args.image, args.output, config, args.recon, args.size, args.force)
    print(result_line(result))
    return 0


def add_decode_image_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("coded", type=Path, help="file written by encode_image")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output .png (or .yuv for 4:2:0)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("--checkpoint", type=Path, help="weights, when the file used a local checkpoint")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run_decode_image(args: argparse.Namespace) -> int:
    from vidcodec.image_coding import decode_image

    x_hat = decode_image(args.coded, args.output, args.checkpoint, force=args.force)
    print(f"decoded {x_hat.shape[-1]}x{x_hat.shape[-2]} to {args.output}")
    return 0


# --- entry points -----------------------------------------------------------------------------
def encode_image_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encode_image", description="Encode one picture with an image codec.")
    add_encode_image_arguments(parser)
    return _run(run_encode_image, parser.parse_args(argv))


def decode_image_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="decode_image", description="Decode a file written by encode_image.")
    add_decode_image_arguments(parser)
    return _run(run_decode_image, parser.parse_args(argv))


def encode_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="encode_sequence", description="Encode a YUV sequence.")
    add_encode_arguments(parser)
    args = parser.parse_args(argv)
    return _run(run_encode, args)


def decode_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="decode_sequence", description="Decode a vidcodec stream.")
    add_decode_arguments(parser)
    args = parser.parse_args(argv)
    return _run(run_decode, args)


def run_info_command(args: argparse.Namespace) -> int:
    from vidcodec.pipeline import frame_summaries, read_stream_header

    header, _ = read_stream_header(args.stream)
    info = dataclasses.asdict(header)
    if args.frames:
        info["frames"] = frame_summaries(args.stream)
    print(json.dumps(info, indent=2, default=lambda value: value.hex()))  # bytes as hex
    return 0


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=Path("configs/train/ssf-small.yaml"))
    parser.add_argument("--lmbda", type=float, help="rate-distortion trade-off (CompressAI MSE scale)")
    parser.add_argument("--steps", type=int, help="total optimizer steps")
    parser.add_argument("--init-from", help="checkpoint to start from (fine-tuning another rate point)")
    parser.add_argument("--init-role", action="append", metavar="ROLE=PATH",
                        help="take the parameters of ROLE (intra or inter) from PATH instead of --init-from; "
                             "repeatable")
    parser.add_argument("--warm-start", metavar="PATH",
                        help="copy the parameters of PATH's model (any model) whose names and shapes match, "
                             "e.g. g_a/g_s of a bmshj2018-factorized-small into mbt2018-mean-small")
    parser.add_argument("--stage", help="curriculum stage: intra, pairs, p-chains or chains (overrides the config's)")
    parser.add_argument("--reference-codec", metavar="PATH",
                        help="pairs / p-chains: frame 0 as this image codec checkpoint decodes it (e.g. "
                             "vidcodec/weights/mbt2018-mean-small-q3.pt), instead of uncompressed")
    parser.add_argument("--seed", type=int, help="seed of weights, clips and noise (overrides the config's)")
    parser.add_argument("--clip-mix", metavar="SOURCE=FRACTION,...",
                        help="fraction of training clips per source, e.g. photo=0.65,dead_leaves=0.35 "
                             "(overrides the config's)")
    parser.add_argument("--data", metavar="DIR",
                        help="train on your own clips instead of generated ones: a folder of video files, "
                             "Vimeo-90k's septuplet folder, or folders of numbered images (overrides the config's)")
    parser.add_argument("--lattice", help="fine-tune with this lattice quantizer in the loop: "
                                          f"{', '.join(LATTICE_QUANTIZER_NAMES)} (see --quant)")
    parser.add_argument("--data-workers", type=int,
                        help="processes making clips ahead of the trainer (overrides the config's)")
    parser.add_argument("--out", type=Path, required=True, help="run directory (resumed when it has last.pt)")
    parser.add_argument("--max-steps", type=int, help="stop after this many more steps (0: only export)")
    parser.add_argument("--max-minutes", type=float,
                        help="stop after this many minutes of training, checkpointed (a machine lent for a while)")
    parser.add_argument("--export", type=Path, help="write a shippable checkpoint here at the end")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true")


def _prepare_export_path(path: Path) -> None:
    """Before any training: a run must not train for hours and then fail to write its export."""
    from vidcodec.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"--export {path} is a directory; give a file name, e.g. {path / 'model.pt'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"--export {path}: cannot create its directory ({error.strerror}); "
                          "choose a writable location") from None


def run_train(args: argparse.Namespace) -> int:
    """Also under ``torchrun --nproc_per_node N -m vidcodec.cli train ...``: data-parallel over N
    processes (batch_size clips each); rank 0 writes the run directory and the export."""
    from vidcodec.errors import ConfigError
    from vidcodec.train.distributed import init_distributed, shutdown_distributed
    from vidcodec.train.trainer import Trainer, load_train_config

    init_roles = {}
    for item in args.init_role or []:
        role, separator, path = item.partition("=")
        if not separator or not path:
            raise ConfigError(f"--init-role {item!r} (expected ROLE=PATH, e.g. intra=runs/intra/model.pt)")
        init_roles[role] = path
    clip_mix = None
    if args.clip_mix:
        try:
            clip_mix = {source: float(fraction) for source, _, fraction in
                        (item.partition("=") for item in args.clip_mix.split(","))}
        except ValueError:
            raise ConfigError(f"--clip-mix {args.clip_mix!r} "
                              "(expected SOURCE=FRACTION,..., e.g. photo=0.65,dead_leaves=0.35)") from None
    overrides = {"lmbda": args.lmbda, "clip_mix": clip_mix, "data": args.data, "data_workers": args.data_workers,
                 "steps": args.steps, "init_from": args.init_from, "seed": args.seed,
                 "warm_start_from": args.warm_start, "reference_codec": args.reference_codec,
                 "lattice": args.lattice, "stage": args.stage, "init_roles_from": init_roles or None}
    config = load_train_config(args.config, overrides)
    if args.export:
        _prepare_export_path(args.export)
    ctx = init_distributed()
    try:
        trainer = Trainer(config, args.out, ctx)
        if trainer.data_folder is not None and ctx.is_main and not args.quiet:
            summary = trainer.data_folder.summary()
            print(f"data: {summary['folder']} ({summary['layout']}, {summary['train']} sources for training); "
                  f"validation: {summary['validation_rule']}", file=sys.stderr)
        max_wall_s = None if args.max_minutes is None else 60 * args.max_minutes
        trainer.run(progress=not args.quiet, max_steps=args.max_steps, max_wall_s=max_wall_s)
        if trainer.stopped_by:
            if ctx.is_main:
                print(f"stopped by {trainer.stopped_by} at step {trainer.step}, checkpointed in "
                      f"{trainer.state_path}; the same command resumes (no export)", file=sys.stderr)
            return EXIT_INTERRUPTED
        if args.export and ctx.is_main:
            trainer.export(args.export)
            print(f"exported step {trainer.step} to {args.export}")
    finally:
        shutdown_distributed(ctx)
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, default=Path("sequences/generated.yaml"),
                        help="dataset file listing the sequences (default: the generated stand-in set)")
    parser.add_argument("--root", type=Path, help="directory of the sequence files (default: the dataset's root)")
    parser.add_argument("--sequences", help="comma-separated subset of the dataset's sequences")
    parser.add_argument("--configs", default="baseline,hex,oct,shift,join",
                        help="comma-separated names of configs/eval/*.yaml (default: %(default)s)")
    parser.add_argument("--qualities", default="1-4", help="rate points, e.g. 1-4 or 2,3 (default: %(default)s)")
    parser.add_argument("--frames", type=int, help="code the first N frames (default: all)")
    parser.add_argument("--intra-period", type=int, default=8, help="I-frame period; -1 = first frame only")
    parser.add_argument("--crop", help="centre crop WxH before coding (quick proxy)")
    parser.add_argument("--downscale", type=int, default=1, help="integer downscale factor (quick proxy)")
    parser.add_argument("--threads", type=int, default=2, dest="num_threads", help="torch threads per job")
    parser.add_argument("--model", help="model id (default: the one model whose files --weights holds, else "
                                        "configs/default.yaml's)")
    parser.add_argument("--weights", type=Path, help="directory of MODEL-qQ.pt checkpoints (default: shipped)")
    parser.add_argument("--intra-model", help="code the I-frames with this model's shipped weights of the same "
                                              "rate point (e.g. ssf-small under dcvc-small's P-frames; --model "
                                              "itself: its own I-frame path), or with x265-intra / svtav1-intra "
                                              "at that rate point's QP. Default: mbt2018-mean-small with the "
                                              "shipped dcvc-small(-detail)/ssf-small weights, none with --weights")
    parser.add_argument("--intra-weights", type=Path, help="directory of INTRA_MODEL-qQ.pt checkpoints for the "
                                                           "I-frames instead of --intra-model's shipped weights "
                                                           "(--intra-model default: the one model it holds)")
    parser.add_argument("--out", type=Path, required=True, help="run directory (rerun to resume)")
    parser.add_argument("--anchor", default="baseline", help="configuration the BD-rates are measured against")
    parser.add_argument("--ray-address", help="address of an existing Ray cluster (default: local, in-process)")
    parser.add_argument("--serial", action="store_true", help="run the jobs in this process, without Ray")
    parser.add_argument("--force", action="store_true", help="discard an earlier run in --out")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true")


def run_eval_command(args: argparse.Namespace) -> int:
    from vidcodec.config import model_in_weights_dir
    from vidcodec.eval.runner import EvalRequest, parse_qualities, run_eval
    from vidcodec.io.yuv import parse_size

    request = EvalRequest(
        dataset=args.dataset, configs=[c.strip() for c in args.configs.split(",") if c.strip()],
        qualities=parse_qualities(args.qualities), out_dir=args.out, root=args.root,
        sequences=[s.strip() for s in args.sequences.split(",")] if args.sequences else None,
        frames=args.frames, intra_period=args.intra_period,
        crop=parse_size(args.crop) if args.crop else None, downscale=args.downscale,
        num_threads=args.num_threads, model=args.model or model_in_weights_dir(args.weights),
        weights_dir=args.weights, intra_model=args.intra_model, intra_weights_dir=args.intra_weights,
        ray_address=args.ray_address, serial=args.serial, force=args.force, progress=not args.quiet,
    )
    outcome = run_eval(request)
    print(summarize_run(args.out, args.anchor))
    if outcome.failed:
        print(f"error: {len(outcome.failed)} of {len(outcome.statuses)} jobs failed (see {args.out / 'jobs.json'}); "
              "rerun the same command to retry them", file=sys.stderr)
        return 1
    return 0


def add_eval_images_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, default=Path("sequences/heldout-photos.yaml"),
                        help="image dataset file (kind: images; default: the held-out photographs)")
    parser.add_argument("--configs", default="baseline,hex,oct,shift,join",
                        help="comma-separated names of configs/eval/*.yaml (default: %(default)s)")
    parser.add_argument("--qualities", default="1-4", help="rate points, e.g. 1-4 (default: %(default)s)")
    parser.add_argument("--model", default=DEFAULT_IMAGE_MODEL, help="image codec, or a video model's I-frame path "
                                                                    "(default: %(default)s)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", type=Path, help="directory of MODEL-qQ.pt checkpoints (default: shipped)")
    weights.add_argument("--pretrained", action="store_true", help="CompressAI zoo weights of each rate point")
    parser.add_argument("--threads", type=int, default=2, dest="num_threads", help="torch threads")
    parser.add_argument("--out", type=Path, required=True, help="run directory (rerun to resume)")
    parser.add_argument("--force", action="store_true", help="redo finished jobs")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--debug", action="store_true")


def run_eval_images_command(args: argparse.Namespace) -> int:
    from vidcodec.errors import ConfigError
    from vidcodec.eval.images import ImageEvalRequest, run_image_eval
    from vidcodec.eval.runner import parse_qualities

    qualities = parse_qualities(args.qualities)
    checkpoints = None
    if args.weights:
        checkpoints = {q: args.weights / f"{args.model}-q{q}.pt" for q in qualities}
        missing = [str(p) for p in checkpoints.values() if not p.is_file()]
        if missing:
            raise ConfigError(f"--weights {args.weights}: missing {', '.join(missing)}")
    request = ImageEvalRequest(dataset=args.dataset, configs=[c.strip() for c in args.configs.split(",") if c.strip()],
                               qualities=qualities, out_dir=args.out, model=args.model, checkpoints=checkpoints,
                               pretrained=args.pretrained, num_threads=args.num_threads, force=args.force,
                               progress=not args.quiet)
    run_image_eval(request)
    report = args.out / "bdrate.md"
    print(report.read_text() if report.is_file() else f"rows in {args.out / 'results.csv'}")
    return 0


def summarize_run(run_dir: Path, anchor: str, metric: str = "psnr_rgb", method: str = "pchip") -> str:
    """Collect an eval run's results, write results.*, the BD-rate report and plots; return the table."""
    from vidcodec.eval.plots import plot_frame_rd, plot_rd_curves
    from vidcodec.eval.report import bdrate_table, write_report
    from vidcodec.eval.results import collect_results, write_results

    rows = collect_results(run_dir)
    if not rows:
        return f"{run_dir}: no finished jobs yet"
    write_results(rows, run_dir)
    plot_rd_curves(rows, run_dir / "plots", metric)
    if anchor not in {row["config"] for row in rows}:
        return f"{run_dir}: {len(rows)} finished jobs; no '{anchor}' results, so no BD-rate table (--anchor)"
    write_report(rows, run_dir, anchor, metric, method)
    # Bits and quality along each sequence, for the anchor at its highest rate point.
    for sequence in sorted({row["sequence"] for row in rows}):
        qualities = [row["quality"] for row in rows if row["sequence"] == sequence and row["config"] == anchor]
        if not qualities:
            continue
        quality = max(qualities)
        rd_log = run_dir / sequence / anchor / f"q{quality}" / "rd.jsonl"
        plot_frame_rd(rd_log, run_dir / "plots" / f"frames_{sequence}_{anchor}_q{quality}.png", metric)
    return bdrate_table(rows, anchor, metric, method).to_markdown()


def add_bdrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="+",
                        help="run directory of vidcodec eval; or several LABEL=RUN (one per codec family, e.g. "
                             "SSF=results/ssf DCVC=results/dcvc) for seed 000's Table 2 with a column group each")
    parser.add_argument("--out", type=Path, help="with LABEL=RUN groups: write table2.md and table2.csv here")
    parser.add_argument("--anchor", default="baseline", help="configuration to measure against (default: %(default)s)")
    parser.add_argument("--metric", default="psnr_rgb", choices=("psnr_rgb", "psnr_yuv", "ms_ssim_rgb"))
    parser.add_argument("--method", default="pchip", choices=("pchip", "cubic"), help="curve interpolation")
    parser.add_argument("--debug", action="store_true")


def run_bdrate_command(args: argparse.Namespace) -> int:
    from vidcodec.errors import OutputError
    from vidcodec.eval.report import grouped_bdrate_table
    from vidcodec.eval.results import atomic_write_text, collect_results

    runs = {}
    for spec in args.run:
        label, sep, run = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if sep and not label:
            raise OutputError(f"{spec!r}: expected RUN or LABEL=RUN")
        if not Path(run).is_dir():
            raise OutputError(f"run directory {run} not found (make one with vidcodec eval --out DIR)")
        runs[label] = Path(run)
    if len(runs) == 1 and "" in runs:
        print(summarize_run(runs[""], args.anchor, args.metric, args.method))
        return 0
    if "" in runs or len(runs) != len(args.run):
        raise OutputError("several runs need distinct labels: LABEL=RUN for each (e.g. SSF=results/ssf)")
    table = grouped_bdrate_table({label: collect_results(run) for label, run in runs.items()}, args.anchor,
                                 args.metric, args.method)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "table2.md", table.to_markdown())
        atomic_write_text(args.out / "table2.csv", table.to_csv())
    print(table.to_markdown())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vidcodec", description="Learned low-delay video codec.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_encode_arguments(commands.add_parser("encode", help="same as encode_sequence"))
    add_decode_arguments(commands.add_parser("decode", help="same as decode_sequence"))
    info = commands.add_parser("info", help="print the sequence header of a stream")
    info.add_argument("stream", type=Path)
    info.add_argument("--frames", action="store_true",
                      help="also list every frame file: type, bytes, header bytes, part lengths, shift indexes")
    info.add_argument("--debug", action="store_true")
    add_train_arguments(commands.add_parser("train", help="train a model on generated clips or your own (--data)"))
    add_eval_arguments(commands.add_parser("eval", help="batch evaluation of a dataset (resumable, on Ray)"))
    add_eval_images_arguments(commands.add_parser("eval-images", help="seed 000's Table 1: the tools on an image "
                                                                      "codec over an image dataset (resumable)"))
    add_bdrate_arguments(commands.add_parser("bdrate", help="BD-rate tables and plots of an eval run"))
    add_encode_image_arguments(commands.add_parser("encode-image", help="same as encode_image"))
    add_decode_image_arguments(commands.add_parser("decode-image", help="same as decode_image"))
    args = parser.parse_args(argv)
    handlers = {"encode": run_encode, "decode": run_decode, "info": run_info_command, "train": run_train,
                "eval": run_eval_command, "eval-images": run_eval_images_command, "bdrate": run_bdrate_command,
                "encode-image": run_encode_image, "decode-image": run_decode_image}
    return _run(handlers[args.command], args)


if __name__ == "__main__":
    sys.exit(main())
