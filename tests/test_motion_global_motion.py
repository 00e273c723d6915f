"""Global motion: integer affine fields both sides compute alike, and a fit that ignores moving objects."""

from __future__ import annotations

import torch

from vidcodec.motion import global_motion


def test_a_pure_translation_is_the_same_vector_everywhere():
    field = global_motion.field((12, -5, 0, 0, 0, 0), (48, 64), 16)
    assert (field[0, 0] == 12).all() and (field[0, 1] == -5).all()


def test_a_zoom_grows_linearly_from_the_centre():
    zoom = round(0.04 * 2**global_motion.SHIFT)  # 1% zoom: 0.04 quarter pel per pixel
    field = global_motion.field((0, 0, zoom, 0, 0, zoom), (64, 96), 16)
    row = field[0, 0, 0].tolist()
    assert row == [-round(0.04 * c) for c in (40, 24, 8)] + [round(0.04 * c) for c in (8, 24, 40)]
    assert torch.equal(field[0, 0, 0], field[0, 0, 3])  # x motion does not depend on y


def test_the_fit_recovers_a_camera_motion_under_a_moving_object():
    parameters = (20, -8, 700, -120, 150, 650)
    field = global_motion.field(parameters, (240, 416), 16)
    moved = field.clone()
    moved[..., 5:9, 10:15] += torch.tensor([40, -30]).view(1, 2, 1, 1)  # an object's own motion
    fitted = global_motion.fit(moved, 16, (240, 416))
    assert torch.equal(global_motion.field(fitted, (240, 416), 16), field)


def test_the_field_of_blocks_samples_the_field_of_pixels_at_block_centres():
    parameters = (20, -8, 700, -120, 150, 650)
    pixels = global_motion.field(parameters, (64, 96), 1).to(torch.float64)
    blocks = global_motion.field(parameters, (64, 96), 16).to(torch.float64)
    # centre of a 16-block: between pixels 7 and 8 (the mean of the two; rounding differs by <= 1)
    centres = (pixels[..., 7::16, 7::16] + pixels[..., 8::16, 8::16]) / 2
    assert (centres - blocks).abs().max() <= 1


def test_parameters_round_trip_through_their_twelve_bytes():
    parameters = (-32768, 32767, 1, -1, 0, 655)
    data = global_motion.to_bytes(parameters)
    assert len(data) == global_motion.PARAMETER_BYTES and global_motion.from_bytes(data) == parameters
