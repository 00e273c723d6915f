"""quant/registry.py: one name per quantizer, its aliases and lattice, read by the CLI, the codec
config, the coding tools, training and get_lattice."""

import argparse
from dataclasses import replace

import pytest

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.bitstream.syntax import ModelRef, SequenceHeader
from vidcodec.cli import add_encode_arguments, add_encode_image_arguments
from vidcodec.config import CodecConfig, load_config
from vidcodec.entropy.lattice_coder import coding_parameters
from vidcodec.errors import ConfigError
from vidcodec.pipeline import stream_tools
from vidcodec.quant.lattice import get_lattice
from vidcodec.quant.registry import (
    LATTICE_QUANTIZER_NAMES,
    QUANTIZER_NAMES,
    QUANTIZERS,
    find_quantizer,
    get_lattice_quantizer,
    get_quantizer,
    lattice_key,
    quantizer_of_lattice,
)
from vidcodec.tools import CodingTools
from vidcodec.train.trainer import TrainConfig


def test_names_and_lattice_keys_are_frozen():
    """Names are written into every stream's sequence header and lattice keys into the table cache's
    file names: renaming one breaks old streams (tests/test_reference_streams.py) and caches."""
    assert {name: q.lattice for name, q in QUANTIZERS.items()} == {
        "sq": None, "hex": "a2", "oct": "a3*", "d4": "d4", "e8": "e8"}
    assert QUANTIZER_NAMES == ("sq", "hex", "oct", "d4", "e8")
    assert LATTICE_QUANTIZER_NAMES == ("hex", "oct", "d4", "e8")


def test_every_spelling_reaches_one_quantizer_in_any_case():
    spellings = [s for q in QUANTIZERS.values() for s in (q.name, *q.aliases)]
    assert len(spellings) == len(set(spellings)), "an alias names two quantizers"
    for q in QUANTIZERS.values():
        for spelling in (q.name, *q.aliases):
            assert find_quantizer(spelling) is q
            assert find_quantizer(f" {spelling.upper()} ") is q
    assert find_quantizer("a3*").name == "oct" and find_quantizer("BCC").name == "oct"
    assert find_quantizer("a7") is None and find_quantizer(None) is None


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"quant='a7' \(expected one of sq, hex \(a2\), oct \(a3\*/bcc\), d4, e8\)"):
        get_quantizer("a7")
    with pytest.raises(ConfigError, match=r"lattice='sq' \(expected a lattice quantizer: hex \(a2\), oct"):
        get_lattice_quantizer("sq")
    assert get_lattice_quantizer("A3*").name == "oct"


def test_get_lattice_takes_every_spelling_of_a_lattice_quantizer():
    for q in QUANTIZERS.values():
        if q.lattice is None:
            continue
        expected = get_lattice(q.lattice)
        for spelling in (q.name, *q.aliases, q.lattice.upper()):
            assert get_lattice(spelling).name == expected.name
        assert quantizer_of_lattice(expected.name) is q  # from a Lattice's own name back to the quantizer
    assert {lattice_key("hex"), lattice_key("Oct"), lattice_key("bcc")} == {"a2", "a3*"}
    assert get_lattice("z2").name == "Z2"  # lattices that are no quantizer stay reachable
    with pytest.raises(ValueError, match=r"known: z1..z8, a2/hex, a3\*/bcc/oct, d4, e8"):
        get_lattice("a7")


@pytest.mark.parametrize("add_arguments", [add_encode_arguments, add_encode_image_arguments])
def test_the_command_lines_offer_the_registry_names(add_arguments):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    quant = next(action for action in parser._actions if "--quant" in action.option_strings)
    assert tuple(quant.choices) == QUANTIZER_NAMES


def test_configs_store_the_canonical_name_and_tools_the_lattice_key():
    config = load_config(overrides={"quant": "a3*"})
    assert config.quant == "oct" and config.coding_tools().lattice == "a3*"
    assert CodecConfig(quant="A2").quant == "hex"
    assert load_config(overrides={"quant": "sq"}).coding_tools().lattice is None
    with pytest.raises(ConfigError, match="quant='a7' \\(expected one of sq, hex, oct, d4, e8\\)"):
        load_config(overrides={"quant": "a7"})
    assert CodingTools(lattice="oct").lattice == "a3*" and CodingTools(lattice="BCC").lattice == "a3*"


def test_training_names_the_lattice_as_the_codec_does():
    assert TrainConfig(lattice="a3*").lattice == "oct" and TrainConfig(lattice="hex").lattice == "hex"
    assert TrainConfig().lattice is None
    for bad in ("sq", "a7"):
        with pytest.raises(ConfigError, match=f"lattice='{bad}' \\(expected a lattice quantizer"):
            TrainConfig(lattice=bad, crop=256).validate()


def test_a_stream_header_must_hold_a_canonical_name():
    """The header field is syntax: an alias there is not a stream this encoder writes."""
    ref = ModelRef("ssf-small", 3, bytes(16))
    header = SequenceHeader(width=64, height=64, bit_depth=8, fps=30.0, num_frames=1, intra_period=1,
                            intra_model=ref, inter_model=ref, pad_multiple=16, pad_margin=8, quantizer="oct",
                            quant_params=coding_parameters("a3*", "residual"))
    assert stream_tools(header).lattice == "a3*"
    with pytest.raises(BitstreamError, match="unknown quantizer 'a3\\*' \\(this decoder knows sq, hex, oct, d4, e8\\)"):
        stream_tools(replace(header, quantizer="a3*"))
