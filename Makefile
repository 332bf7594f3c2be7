# lm-steps: `make run` executes every notebook, `make test` runs the whole test suite.
#
# Variables (override on the command line, e.g. `make run LM_STEPS_PROFILE=gpu`):
#   TORCH_SPEC        how torch is installed first (CI pins the local CPU wheel: torch==2.13.0)
#   LM_STEPS_PROFILE  smoke | cpu | gpu  (run: unset picks gpu with CUDA, else cpu; test: smoke)
#   BUILD             where executed notebooks and their HTML go (default build/)
#   NOTEBOOKS         which notebooks `make run` executes (default: all of notebooks/*.ipynb)

PYTHON     ?= python3
TORCH_SPEC ?= torch>=2.3
BUILD      ?= build
NOTEBOOKS  ?= $(sort $(wildcard notebooks/*.ipynb))

# Use the active virtual environment if there is one, else create .venv here.
ifdef VIRTUAL_ENV
ENV_DIR := $(VIRTUAL_ENV)
else
ENV_DIR := .venv
endif
PY      := $(ENV_DIR)/bin/python
STAMP   := $(ENV_DIR)/.lm-steps-installed

.PHONY: install data run test clean help

help:
	@echo "make run   - install, fetch data, execute notebooks into $(BUILD)/ (profile: LM_STEPS_PROFILE)"
	@echo "make test  - install, then pytest: unit tests + every notebook under nbval (smoke profile)"

$(PY):
	$(PYTHON) -m venv $(ENV_DIR)

$(STAMP): $(PY) requirements.txt pyproject.toml
	$(PY) -m pip install "$(TORCH_SPEC)"
	$(PY) -m pip install -r requirements.txt -e .
	touch $(STAMP)

install: $(STAMP)

data: install
	$(PY) -m lm_steps.data fetch names tinyshakespeare wikitext-2-v1

run: data
	@mkdir -p $(BUILD)/notebooks $(BUILD)/html
	@set -e; for nb in $(NOTEBOOKS); do \
		echo "== $$nb (profile: $${LM_STEPS_PROFILE:-auto})"; \
		$(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
			--output-dir $(BUILD)/notebooks "$$nb"; \
		$(PY) -m jupyter nbconvert --to html --output-dir $(BUILD)/html \
			"$(BUILD)/notebooks/$$(basename $$nb)"; \
	done
	@echo "executed notebooks: $(BUILD)/notebooks/   HTML: $(BUILD)/html/"

test: install
	LM_STEPS_PROFILE=$${LM_STEPS_PROFILE:-smoke} $(PY) -m pytest

clean:
	rm -rf $(BUILD) .pytest_cache
