# Import vidcodec before any test module imports compressai: vidcodec.compat makes compressai
# importable where torchvision is missing (see vidcodec/compat.py).
import vidcodec  # noqa: F401
