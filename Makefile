# Set-up: `make demo` runs the demo, `make test` runs the tests. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, pinned: on these machines a CPU wheel of 2.13.0 is on disk, and an unpinned
# torch would pull a multi-GB CUDA build. Elsewhere pip fetches the same version.
TORCH ?= torch==2.13.0

.PHONY: demo test bench lint docs venv clean browser

$(VENV)/.installed-base: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e .
	touch $@

# torch-fidelity is the FID parity reference of the tests; --no-deps because it declares
# torchvision, which we do not install (the tests shim the imports it does not use).
$(VENV)/.installed-test: $(VENV)/.installed-base
	$(PIP) install --quiet -e ".[test,onnx,c2pa,lips]"
	$(PIP) install --quiet --no-deps "torch-fidelity==0.4.0"
	touch $@

venv: $(VENV)/.installed-base

# The demo measures its generator in the offline CIFAR ResNet-56 space when the weights are
# at hand: beside this checkout in ../shared/models (development machines), or in the cache.
R56 := $(wildcard ../shared/models/resnet56-4bfd9763.th)

demo: $(VENV)/.installed-base
	$(VENV)/bin/deepfake-lab demo $(if $(R56),--metrics-weights $(R56))

# tests/serve/test_browser.py drives headless Chromium (Debian's package) and skips, saying
# why, without it: installed here when root and apt-get allow.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "browser test: $$(command -v chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: the browser test will be skipped"; \
	else \
	  echo "browser test skipped: no chromium, and installing it needs root and apt-get"; \
	fi

test: $(VENV)/.installed-test browser
	$(PY) -m pytest

bench: $(VENV)/.installed-base
	$(PY) bench/gan_step.py

# The documentation site (docs/ + mkdocs.yml) into site/; --strict turns every warning
# (a broken link or anchor, a page missing from the nav) into a failure.
$(VENV)/.installed-docs: $(VENV)/.installed-base
	$(PIP) install --quiet -e ".[docs]"
	touch $@

docs: $(VENV)/.installed-docs
	$(VENV)/bin/mkdocs build --strict -d site

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) build dist site src/*.egg-info
