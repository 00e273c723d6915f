"""Error types that the command line reports as one clear line (no traceback)."""

from __future__ import annotations


class VidcodecError(Exception):
    """Base of all errors caused by the user's input, files or environment, not by a bug."""


class ConfigError(VidcodecError, ValueError):
    """A configuration field is out of range; the message names the field and the expected range."""


class CheckpointError(VidcodecError):
    """A model checkpoint is missing, unreadable, or not the one a bitstream was encoded with."""


class OutputError(VidcodecError):
    """The output location cannot be used (exists and is not empty without --force, ...)."""
