"""Where outputs may go: never over an input, never a partial file under a final name.

Every command writes into a hidden staging name beside its output (``.NAME.partial-PID``) and renames
it at the end. The checks here refuse, before any work, an output that would replace one of the
command's inputs (even with --force: --force replaces earlier *outputs*), a regular file given as an
output directory, and a directory that is not an earlier output. A run also removes the staging that
processes which no longer exist left beside its output (kill -9, power loss).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vidcodec.errors import OutputError

# A directory --force may replace holds one of these at its top: what encode_sequence and the anchor
# encoders write (a user's folder of unrelated files has neither).
OUTPUT_DIR_MARKERS = ("sequence.hdr", "summary.json")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def is_within(path: Path, directory: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(directory).resolve())
        return True
    except ValueError:
        return False


def check_output_file(path: Path, inputs: Iterable[Path], force: bool, flag: str) -> None:
    """Refuse an output file ``path`` (named by option ``flag``) that is one of ``inputs`` (whatever
    --force says), a directory, or an existing file without --force."""
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, source):
            raise OutputError(f"{flag} {path} is the input {source}: an output never replaces an input; "
                              "choose another name")
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory; give a file name")
    if path.exists() and not force:
        raise OutputError(f"{flag} {path} exists; pass --force to replace it, or choose another name")


def check_output_dir(out_dir: Path, inputs: Iterable[Path], force: bool, flag: str = "--out") -> None:
    """Refuse an output directory that is a regular file, holds one of ``inputs``, or is a non-empty
    directory without --force or that is not an earlier output (OUTPUT_DIR_MARKERS)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{flag} {out_dir} is a file, not a directory: choose another {flag} "
                          "(--force replaces only an earlier output directory)")
    if not out_dir.is_dir() or not any(out_dir.iterdir()):
        return
    if not force:
        raise OutputError(f"output directory {out_dir} exists and is not empty; pass --force to replace it")
    for source in inputs:
        if source is not None and is_within(source, out_dir):
            raise OutputError(f"{flag} {out_dir} holds the input {source}: an output never replaces an input; "
                              f"choose another {flag}")
    if not any((out_dir / marker).is_file() for marker in OUTPUT_DIR_MARKERS):
        raise OutputError(f"{flag} {out_dir} is not an earlier output (it has no {' or '.join(OUTPUT_DIR_MARKERS)}); "
                          f"--force replaces only those: choose another {flag}")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own staging of this name is from an earlier call that already ended
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_staging(out_path: Path) -> list[Path]:
    """Remove ``.NAME.partial-PID*`` and ``.NAME.old-PID`` beside ``out_path`` whose process is gone;
    returns what was removed. Staging of live processes (a concurrent run) is left alone."""
    out_path = Path(out_path)
    if not out_path.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(out_path.name)}\.(?:partial|old)-(\d+)(?:\..*)?")
    removed = []
    for candidate in out_path.parent.iterdir():
        match = pattern.fullmatch(candidate.name)
        if not match or _process_alive(int(match.group(1))):
            continue
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def output_error(path: Path, error: OSError) -> OutputError:
    """An OSError while writing ``path`` as one line naming ``path`` (not the hidden staging name)."""
    reason = error.strerror or str(error)
    return OutputError(f"cannot write {path}: {reason}")


def _make_staging(out_dir: Path) -> Path:
    staging = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out_dir)
        staging.mkdir()
    except OSError as error:
        raise output_error(out_dir, error) from None
    return staging


def _replace_with(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``, moving an earlier output aside first; on failure put the
    earlier output back and remove the staging, so nothing is left half done."""
    trash = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    moved_aside = False
    try:
        if out_dir.exists():
            out_dir.rename(trash)
            moved_aside = True
        staging.rename(out_dir)
    except OSError as error:
        if moved_aside and not out_dir.exists():
            trash.rename(out_dir)
        shutil.rmtree(staging, ignore_errors=True)
        raise output_error(out_dir, error) from None
    if moved_aside:
        shutil.rmtree(trash, ignore_errors=True)


@contextmanager
def staged_output(out_dir: Path, force: bool, inputs: Iterable[Path] = ()) -> Iterator[Path]:
    """Yield a staging directory that replaces ``out_dir`` only when the block completes.

    ``inputs``: files the run reads; an ``out_dir`` holding one is refused (check_output_dir)."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, inputs, force)
    staging = _make_staging(out_dir)
    try:
        yield staging
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        if error.filename is not None and is_within(Path(error.filename), staging):
            raise output_error(out_dir, error) from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _replace_with(staging, out_dir)


@contextmanager
def staged_file(path: Path) -> Iterator[Path]:
    """Yield a hidden name beside ``path`` (same suffix) that is renamed to ``path`` only when the
    block completes; removed on failure."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path)
    except OSError as error:
        raise output_error(path, error) from None
    try:
        yield tmp
        tmp.replace(path)
    except OSError as error:
        _discard(tmp)
        if error.filename is not None and Path(error.filename) in (tmp, path):
            raise output_error(path, error) from None
        raise
    except BaseException:
        _discard(tmp)
        raise


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # a name the file system refuses was never created
        pass
