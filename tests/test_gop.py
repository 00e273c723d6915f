import pytest

from vidcodec.gop import FrameType, GopScheduler


@pytest.mark.parametrize(
    "intra_period, num_frames, expected",
    [
        (8, 17, "IPPPPPPPIPPPPPPPI"),
        (-1, 10, "IPPPPPPPPP"),
        (1, 4, "IIII"),
        (3, 7, "IPPIPPI"),
        (32, 5, "IPPPP"),
    ],
)
def test_frame_types(intra_period, num_frames, expected):
    plans = GopScheduler(intra_period).plans(num_frames)
    assert "".join(plan.frame_type.value for plan in plans) == expected
    assert [plan.poc for plan in plans] == list(range(num_frames))


@pytest.mark.parametrize("intra_period", [8, -1, 3])
def test_p_frames_reference_the_previous_frame_and_i_frames_nothing(intra_period):
    for plan in GopScheduler(intra_period).plans(20):
        if plan.frame_type == FrameType.INTRA:
            assert plan.ref_poc is None
        else:
            assert plan.ref_poc == plan.poc - 1


@pytest.mark.parametrize("intra_period", [0, -2, 2.5, True])
def test_invalid_intra_period_names_the_range(intra_period):
    with pytest.raises(ValueError, match="expected -1 or >= 1"):
        GopScheduler(intra_period)


def test_negative_poc_is_refused():
    with pytest.raises(ValueError, match="poc=-1"):
        GopScheduler(8).plan(-1)
