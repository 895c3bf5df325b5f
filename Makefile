# Two entry points (see README): `make demo` runs the workshop's main job,
# `make test` runs the whole test suite. Both create .venv/ on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh $(PY) $(VENV)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/bert-workshop demo

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info
