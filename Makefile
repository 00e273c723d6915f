# Set-up and main jobs. `make demo` and `make test` work on a fresh clone: they create .venv and
# install everything (torch stays the CPU build pinned in constraints.txt; compressai is installed
# without its torchvision dependency, see vidcodec/compat.py).
PYTHON ?= python3
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pip's resolver reports compressai's torchvision requirement (and its build-time pybind11, tomli and
# wheel) as an "ERROR" after every install into the venv, although compressai is installed without them
# on purpose. Drop exactly those lines; pip's exit
# status (PIPESTATUS[0]) still decides, so a real failure stops make with its message shown.
PIP_KNOWN_CONFLICT := grep -v -e "^ERROR: pip's dependency resolver does not currently take into account" \
	-e "^compressai 1\.2\.8 requires \(torchvision\|pybind11\|tomli\|wheel\)\b.*, which is not installed" || true
DEMO_YUV := sequences/generated/Demo_416x240_30fps_420_8bit_YUV.yuv

.PHONY: setup demo lint test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt --no-deps compressai==1.2.8
	$(BIN)/pip install -q -c constraints.txt -e '.[test]' 2>&1 | { $(PIP_KNOWN_CONFLICT); }; exit $${PIPESTATUS[0]}
	touch $(STAMP)

$(DEMO_YUV): $(STAMP) scripts/data/make_sequences.py
	$(BIN)/python scripts/data/make_sequences.py --demo

demo: $(STAMP) $(DEMO_YUV)
	$(BIN)/encode_sequence $(DEMO_YUV) --out out/demo --recon out/demo_recon.yuv --force
	$(BIN)/decode_sequence out/demo -o out/demo_decoded.yuv
	cmp out/demo_recon.yuv out/demo_decoded.yuv && echo "decode_sequence output is byte-identical to the encoder's reconstruction"

# ruff's rules and line length are in pyproject.toml ([tool.ruff]); a finding fails CI before any test runs.
lint: $(STAMP)
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

test-fast: $(STAMP)  # for quick loops; CI runs `make test`
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf out $(VENV)
