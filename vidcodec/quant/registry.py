"""The quantizers of latents, each under one canonical name, with the spellings that also reach it.

A quantizer's canonical name is what users write (``--quant oct``, ``quant: oct`` in a config, the
``lattice`` of a training config) and what a stream's sequence header stores in its ``quantizer``
field, so those names are syntax: never rename one, only add. Its lattice key is what
``get_lattice`` and the PMF tables are keyed on (``TableSpec.lattice``, hence the table cache's
file names), so those keys stay too. Aliases are the other spellings accepted where a quantizer or
lattice is named (configs, training, scripts): the lattice key itself and the lattice's usual names.

Adding a quantizer is one entry here plus, for a lattice, its construction in lattice.py
(``get_lattice``) and, if its cells need it, an integration rule in tables.py (``cell_probabilities``).

Pure Python with no torch import: the CLI reads it to build its argument choices.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidcodec.errors import ConfigError


@dataclass(frozen=True)
class Quantizer:
    """name: canonical name (config ``quant``, ``--quant``, the stream's quantizer field).
    lattice: lattice key for ``get_lattice`` and ``TableSpec`` (None: scalar rounding, the entropy
        model's own tables). aliases: other accepted spellings, lower case.
    summary: one line for help texts. experimental: tables built by quasi-Monte Carlo and only
        small scales lattice-coded; not part of the papers' evaluation."""

    name: str
    lattice: str | None
    aliases: tuple[str, ...]
    summary: str
    experimental: bool = False


# Order: the order help texts and error messages list them in.
QUANTIZERS: dict[str, Quantizer] = {q.name: q for q in (
    Quantizer("sq", None, (), "scalar rounding (the baseline)"),
    Quantizer("hex", "a2", ("a2",), "Hex-Quant: hexagonal A2 lattice on pairs of latents"),
    Quantizer("oct", "a3*", ("a3*", "bcc"),
              "Oct-Quant: A3* (BCC) lattice, truncated-octahedron cells, on triples of latents"),
    Quantizer("d4", "d4", (), "D4 lattice on 4-tuples", experimental=True),
    Quantizer("e8", "e8", (), "E8 lattice on 8-tuples", experimental=True),
)}
QUANTIZER_NAMES = tuple(QUANTIZERS)
LATTICE_QUANTIZER_NAMES = tuple(name for name, q in QUANTIZERS.items() if q.lattice is not None)

_BY_SPELLING = {spelling: q for q in QUANTIZERS.values() for spelling in (q.name, *q.aliases)}


def _known(lattices_only: bool) -> str:
    entries = [q for q in QUANTIZERS.values() if q.lattice is not None or not lattices_only]
    return ", ".join(q.name + (f" ({'/'.join(q.aliases)})" if q.aliases else "") for q in entries)


def find_quantizer(name: str) -> Quantizer | None:
    """The quantizer ``name`` spells (canonical name or alias, any case), None when none does."""
    return _BY_SPELLING.get(name.strip().lower()) if isinstance(name, str) else None


def get_quantizer(name: str, field: str = "quant") -> Quantizer:
    """The quantizer ``name`` spells; ConfigError naming ``field`` and the known spellings otherwise."""
    quantizer = find_quantizer(name)
    if quantizer is None:
        raise ConfigError(f"{field}={name!r} (expected one of {_known(lattices_only=False)})")
    return quantizer


def get_lattice_quantizer(name: str, field: str = "lattice") -> Quantizer:
    """As get_quantizer, for places that need a lattice (training with a lattice in the loop)."""
    quantizer = find_quantizer(name)
    if quantizer is None or quantizer.lattice is None:
        raise ConfigError(f"{field}={name!r} (expected a lattice quantizer: {_known(lattices_only=True)})")
    return quantizer


def quantizer_of_lattice(lattice: str) -> Quantizer | None:
    """The quantizer coding with ``lattice`` (a lattice key, alias or Lattice.name such as "A3*")."""
    quantizer = find_quantizer(lattice)
    return quantizer if quantizer is not None and quantizer.lattice is not None else None


def lattice_spellings() -> str:
    """"a2/hex, a3*/bcc/oct, d4, e8": each lattice key with the other spellings that reach it."""
    return ", ".join("/".join(dict.fromkeys((q.lattice, *q.aliases, q.name)))
                     for q in QUANTIZERS.values() if q.lattice is not None)


def lattice_key(name: str) -> str:
    """The lattice key of any spelling of a lattice quantizer ("oct", "BCC" -> "a3*"); other names
    (lattices that are no quantizer, such as "z2") lower-cased, for get_lattice to judge."""
    quantizer = quantizer_of_lattice(name)
    return quantizer.lattice if quantizer is not None else name.strip().lower()
