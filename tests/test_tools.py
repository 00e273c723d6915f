"""Coding tools by role: scopes, the header's role mask, shift settings."""

import numpy as np
import pytest

from vidcodec.errors import ConfigError
from vidcodec.tools import QUANT_SCOPES, ROLE_BITS, ROLES, SHIFT_SCOPES, ShiftSettings, mask_roles, roles_mask


def test_settings_store_float32_steps_and_require_zero():
    settings = ShiftSettings(candidates=(0.0, 0.1, 0.3))
    assert settings.candidates == tuple(float(np.float32(v)) for v in (0.0, 0.1, 0.3))
    assert settings.zero_index == 0 and settings.candidates[settings.probe_index] == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="include 0.0"):
        ShiftSettings(candidates=(0.1, 0.2))
    with pytest.raises(ConfigError, match="search"):
        ShiftSettings(search="newton")
    with pytest.raises(ConfigError, match="distinct"):
        ShiftSettings(candidates=(0.0, 0.1, 0.1))
    with pytest.raises(ConfigError, match="scope mask"):
        ShiftSettings(scope_mask=0)
    with pytest.raises(ConfigError, match="scope mask"):
        ShiftSettings(scope_mask=16)


def test_every_role_has_its_own_header_bit():
    assert set(ROLE_BITS) == set(ROLES)
    assert sorted(ROLE_BITS.values()) == [1, 2, 4, 8]
    for scope in list(QUANT_SCOPES.values()) + list(SHIFT_SCOPES.values()):
        assert mask_roles(roles_mask(scope)) == scope


def test_the_papers_scope_is_the_p_frames_main_latent_in_every_family():
    """SSF's residual and a conditional codec's contextual latent get the tools alike."""
    assert QUANT_SCOPES["residual"] == SHIFT_SCOPES["residual"] == {"residual", "contextual"}
    assert ShiftSettings().roles == {"residual", "contextual"}
    assert "intra" in SHIFT_SCOPES["residual+intra"] and "motion" not in SHIFT_SCOPES["residual+intra"]
