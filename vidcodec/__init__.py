"""vidcodec: a learned low-delay video codec pipeline (SSF, lattice quantization, latent shift)."""

from vidcodec.compat import ensure_compressai_importable

ensure_compressai_importable()

__version__ = "0.1.0"
