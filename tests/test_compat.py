import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, timeout=180)


@pytest.mark.slow
def test_compressai_imports_when_torchvision_is_broken():
    # None in sys.modules makes "import torchvision" raise ImportError, as a missing or broken build does.
    result = run("""
        import sys
        sys.modules["torchvision"] = None
        import vidcodec, compressai
        from compressai.models.video import ScaleSpaceFlow
        print(sys.modules["torchvision"].__doc__)
    """)
    assert result.returncode == 0, result.stderr
    assert "stand-in registered by vidcodec.compat" in result.stdout


def test_a_working_torchvision_is_left_alone():
    result = run("""
        import sys, types
        real = types.ModuleType("torchvision"); real.__doc__ = "working"
        real.transforms = types.ModuleType("torchvision.transforms")
        sys.modules["torchvision"] = real; sys.modules["torchvision.transforms"] = real.transforms
        import vidcodec
        print(sys.modules["torchvision"].__doc__)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "working"
