"""Make ``import compressai`` work where torchvision cannot be imported.

compressai declares torchvision as a dependency but only imports it to list transform names in
``compressai/registry/transforms.py``. No CPU build of torchvision exists on this project's package
registry, and the CUDA build fails to load next to CPU torch (``operator torchvision::nms does not
exist``). When (and only when) the real torchvision cannot be imported, we register an empty
stand-in module so that compressai imports; nothing in vidcodec uses torchvision. On a machine with
a working torchvision this module changes nothing.
"""

from __future__ import annotations

import sys
import types


def ensure_compressai_importable() -> None:
    if "compressai" in sys.modules:
        return
    try:
        import torchvision.transforms  # noqa: F401
    except Exception:  # ImportError, or RuntimeError from a CUDA build on CPU torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        stand_in = types.ModuleType("torchvision")
        stand_in.__doc__ = "empty stand-in registered by vidcodec.compat (torchvision unavailable)"
        transforms = types.ModuleType("torchvision.transforms")
        stand_in.transforms = transforms  # type: ignore[attr-defined]
        sys.modules["torchvision"] = stand_in
        sys.modules["torchvision.transforms"] = transforms
