"""models/tool_attachment.py: the tools one codec codes with, its lattice coders and its shift memory."""

from __future__ import annotations

import pytest
import torch

from vidcodec.bitstream.errors import BitstreamError
from vidcodec.models.registry import build_model
from vidcodec.models.tool_attachment import ToolAttachment, cdf_fingerprint
from vidcodec.tools import CodingTools, ShiftSettings, roles_mask

HEX_ON_THE_IMAGE = CodingTools(lattice="a2", quant_roles=frozenset({"intra"}))


@pytest.fixture
def factorized():
    """A small factorized-prior image codec with its CDF tables written (update)."""
    torch.manual_seed(0)
    codec = build_model("bmshj2018-factorized", N=8, M=8).eval()
    codec.update(force=True)
    return codec


def test_a_lattice_coder_is_kept_for_the_same_tables_wherever_they_sit_in_memory(factorized):
    factorized.attach_tools(HEX_ON_THE_IMAGE)
    first = factorized.latent_coders["intra"].y_coder
    assert first is not None
    bottleneck = factorized.entropy_bottleneck
    # The same values in new tensors (what a copy or a device move does): the same coder, the key
    # being the tables' values and not their address.
    for name in ("_quantized_cdf", "_cdf_length", "_offset"):
        setattr(bottleneck, name, getattr(bottleneck, name).clone())
    factorized.attach_tools(CodingTools())
    assert factorized.latent_coders["intra"].y_coder is None
    factorized.attach_tools(HEX_ON_THE_IMAGE)
    assert factorized.latent_coders["intra"].y_coder is first


def test_new_weights_give_a_new_lattice_coder(factorized):
    factorized.attach_tools(HEX_ON_THE_IMAGE)
    first = factorized.latent_coders["intra"].y_coder
    before = cdf_fingerprint(factorized.entropy_bottleneck)
    with torch.no_grad():  # training moved the prior; update() writes its new tables
        for parameter in factorized.entropy_bottleneck.parameters():
            parameter.add_(0.5)
    factorized.update(force=True)
    assert cdf_fingerprint(factorized.entropy_bottleneck) != before
    factorized.attach_tools(HEX_ON_THE_IMAGE)
    second = factorized.latent_coders["intra"].y_coder
    assert second is not first and second.entropy_model is factorized.entropy_bottleneck


def test_each_codec_has_its_own_tools(factorized):
    other = build_model("bmshj2018-factorized", N=8, M=8)
    factorized.attach_tools(HEX_ON_THE_IMAGE)
    assert factorized.tools is HEX_ON_THE_IMAGE
    assert other.tools == CodingTools() and other.tool_attachment is not factorized.tool_attachment


def test_a_sequence_starts_with_no_shift_memory_or_the_one_it_is_given():
    attachment = ToolAttachment()
    attachment.shift_memory["residual"] = (3,)
    attachment.start_sequence()
    assert attachment.shift_memory == {}
    kept = {"residual": (5,)}
    attachment.start_sequence(kept)
    assert attachment.shift_memory is kept


def test_shift_indexes_that_do_not_fit_the_latents_are_refused():
    attachment = ToolAttachment()
    settings = ShiftSettings(groups=2, scope_mask=roles_mask({"residual"}))
    attachment.attach(CodingTools(shift=settings), {})  # no latent coders: only the settings matter here
    assert attachment.shifts("residual") and not attachment.shifts("motion")
    zero, other = settings.zero_index, settings.probe_index
    attachment.check_shift_indexes((zero, other), ("motion", "residual"))
    attachment.check_shift_indexes((), ("residual",))  # every step zero: no indexes at all
    with pytest.raises(BitstreamError, match="holds 1 shift indexes, expected 2"):
        attachment.check_shift_indexes((other,), ("residual",))
    with pytest.raises(BitstreamError, match="beyond the"):
        attachment.check_shift_indexes((zero, len(settings.candidates)), ("residual",))
    assert attachment.header_shift_indexes((zero, zero)) == ()
    assert attachment.header_shift_indexes((zero, other)) == (zero, other)
