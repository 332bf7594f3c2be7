# lm-steps: `make run` executes every notebook, `make test` runs the whole test suite.
#
# Variables (override on the command line, e.g. `make run LM_STEPS_PROFILE=gpu`):
#   TORCH_SPEC        which torch to install first (default torch>=2.3; CI pins torch==2.13.0)
#   TORCH_INDEX       where from (default: PyTorch's CPU wheel index on Linux without an NVIDIA GPU, else
#                     PyPI; TORCH_INDEX= (empty) is always PyPI, whose Linux build is the CUDA one)
#                     (changing TORCH_SPEC or TORCH_INDEX later reinstalls torch in the same environment)
#   EXTRAS            the package's extras to install (default notebooks,test; add hub for `datasets`)
#   LM_STEPS_PROFILE  smoke | cpu | gpu  (run: unset picks gpu with CUDA, else cpu; test: smoke)
#   NOTEBOOKS         which notebooks `make run` executes and `make data` fetches for (default: all)
#   BUILD             where executed notebooks and their HTML go (default build/)
#   DATA_DIR          `make data DATA_DIR=folder`: fetch into that folder, for LM_STEPS_DATA offline
#   KERNEL            the Jupyter kernel `make install` registers for this environment (default lm-steps)

PYTHON      ?= python3
TORCH_SPEC  ?= torch>=2.3
EXTRAS      ?= notebooks,test
BUILD       ?= build
NOTEBOOKS   ?= $(sort $(wildcard notebooks/*.ipynb))
DATA_DIR    ?=
KERNEL      ?= lm-steps

# tiktoken keeps its GPT-2/GPT-4 files here (not in a temporary folder) unless told otherwise
export TIKTOKEN_CACHE_DIR ?= $(CURDIR)/data/tiktoken

# Which torch build. TORCH_INDEX given (even empty) wins. Otherwise Linux without an NVIDIA GPU takes the
# CPU build (about 0.2 GB instead of several GB of CUDA libraries it could not use); with a GPU, or on
# macOS (whose PyPI build is the CPU/MPS one), PyPI's default.
CPU_INDEX := https://download.pytorch.org/whl/cpu
ifeq ($(origin TORCH_INDEX),undefined)
ifeq ($(shell uname -s),Linux)
ifeq ($(shell nvidia-smi -L 2>/dev/null | grep -c '^GPU'),0)
TORCH_INDEX := $(CPU_INDEX)
TORCH_WHY   := no NVIDIA GPU found (nvidia-smi lists none), so the CPU build; TORCH_INDEX= (empty) takes PyPI's CUDA build
else
TORCH_INDEX :=
TORCH_WHY   := an NVIDIA GPU found, so PyPI's default build, with CUDA; TORCH_INDEX=$(CPU_INDEX) takes the CPU build
endif
else
TORCH_INDEX :=
TORCH_WHY   := not Linux, so PyPI's default build (CPU, and MPS on Apple silicon)
endif
else
TORCH_WHY   := TORCH_INDEX given$(if $(TORCH_INDEX),, empty: PyPI)
endif

# Use the active virtual environment if there is one, else create .venv here.
ifdef VIRTUAL_ENV
ENV_DIR := $(VIRTUAL_ENV)
else
ENV_DIR := .venv
endif
PY      := $(ENV_DIR)/bin/python
STAMP   := $(ENV_DIR)/.lm-steps-installed

# The stamp records how torch and the extras were installed. TORCH_SPEC or TORCH_INDEX given (on the
# command line or in the environment) and different from the record reinstalls torch; left out, the
# environment keeps the torch it has.
TORCH_WANT  := $(strip $(TORCH_SPEC) $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)))
STAMP_TORCH := $(strip $(shell cut -s -d'|' -f1 $(STAMP) 2>/dev/null))
ifeq ($(filter-out file,$(origin TORCH_SPEC) $(origin TORCH_INDEX)),)
ifneq ($(STAMP_TORCH),)
TORCH_WANT  := $(STAMP_TORCH)
TORCH_WHY   := kept: the environment's torch as installed before; give TORCH_SPEC or TORCH_INDEX to change it
endif
endif
ifneq ($(shell cat $(STAMP) 2>/dev/null),$(TORCH_WANT) | $(EXTRAS))
.PHONY: $(STAMP)
endif

# What each notebook reads, so `make run NOTEBOOKS=...` fetches only that (unlisted notebooks: everything).
NEEDS_01  := names
NEEDS_02  := names
NEEDS_03  := names
NEEDS_03b := names
NEEDS_04  := names
NEEDS_05  := tinyshakespeare
NEEDS_05b := wikitext-2-v1 tinyshakespeare tiktoken
NEEDS_06  := wikitext-2-v1 tiktoken
NEEDS_07  := tinyshakespeare
NEEDS_08  := tinyshakespeare
NEEDS_09  := tinyshakespeare
NEEDS_10  := tinyshakespeare
ALL_DATA  := names tinyshakespeare wikitext-2-v1 tiktoken
NEEDS := $(sort $(foreach nb,$(NOTEBOOKS),$(or $(NEEDS_$(firstword $(subst _, ,$(notdir $(nb))))),$(ALL_DATA))))

.PHONY: install data run test exercises colab torch-choice clean help

help:
	@echo "make run   - install, fetch the data, execute the notebooks into $(BUILD)/ (profile: LM_STEPS_PROFILE)"
	@echo "make test  - install, then pytest: unit tests + every notebook under nbval (smoke profile)"
	@echo "make exercises - the learner's copies of the notebooks in $(BUILD)/exercises/ (each solution a stub)"
	@echo "make data  - fetch the datasets and tiktoken files (DATA_DIR=folder: into that folder, for offline use)"
	@echo "make colab - write each notebook's install cell and the README's Colab links from pyproject.toml's Repository URL"
	@echo "make install - the environment only: torch, the package with its extras, the Jupyter kernel '$(KERNEL)'"

$(PY):
	$(PYTHON) -m venv $(ENV_DIR)

$(STAMP): $(PY) pyproject.toml
	@if [ -n '$(STAMP_TORCH)' ] && [ '$(STAMP_TORCH)' != '$(TORCH_WANT)' ]; then \
		echo "torch was installed from '$(STAMP_TORCH)'; reinstalling it from '$(TORCH_WANT)'"; \
		$(PY) -m pip uninstall -y -q torch; \
	fi
	@echo "torch: $(TORCH_WANT) ($(TORCH_WHY))"
	$(PY) -m pip install $(if $(filter --index-url,$(TORCH_WANT)),$(foreach w,$(TORCH_WANT),'$(w)'),'$(TORCH_SPEC)')
	$(PY) -m pip install -e '.[$(EXTRAS)]'
	@# inside the environment (--sys-prefix), not user-wide: another checkout's environment keeps its own
	@$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (lm-steps: $(CURDIR))" >/dev/null 2>&1 \
		&& echo "registered the Jupyter kernel '$(KERNEL)' in $(ENV_DIR) (this environment's Python; its own Jupyter lists it)" \
		|| echo "note: the Jupyter kernel '$(KERNEL)' was not registered (is ipykernel installed?)"
	@echo '$(TORCH_WANT) | $(EXTRAS)' > $(STAMP)

install: $(STAMP)

torch-choice:
	@echo "torch: $(TORCH_WANT) ($(TORCH_WHY))"

data: install
	$(PY) -m lm_steps.data fetch $(NEEDS) $(if $(DATA_DIR),--to '$(DATA_DIR)')

run: data
	@mkdir -p $(BUILD)/notebooks $(BUILD)/html
	@echo "profile: $$($(PY) -c 'import lm_steps; print(lm_steps.get_profile())')" \
		"(LM_STEPS_PROFILE=$${LM_STEPS_PROFILE:-unset: gpu with CUDA, else cpu})"
	@# the kernel talks over local sockets in a fresh folder (an absolute path: the kernel starts in
	@# notebooks/, nbconvert here), so no "running over TCP without encryption" warning
	@set -e; sock=$$(mktemp -d); trap 'rm -rf "$$sock"' EXIT; for nb in $(NOTEBOOKS); do \
		echo "== $$nb"; \
		$(PY) -m jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=-1 \
			--KernelManager.transport=ipc --KernelManager.ip="$$sock/kernel" --log-level=WARN \
			--output-dir $(BUILD)/notebooks "$$nb"; \
		$(PY) -m jupyter nbconvert --to html --log-level=WARN --output-dir $(BUILD)/html \
			"$(BUILD)/notebooks/$$(basename $$nb)"; \
	done
	@echo "executed notebooks: $(BUILD)/notebooks/   HTML: $(BUILD)/html/"

exercises: install
	$(PY) -m lm_steps.exercises.build --out $(BUILD)/exercises $(NOTEBOOKS)
	@echo "open them with: $(ENV_DIR)/bin/jupyter lab $(BUILD)/exercises/"

colab:
	$(PYTHON) docs/colab.py

test: install
	LM_STEPS_PROFILE=$${LM_STEPS_PROFILE:-smoke} $(PY) -m pytest

clean:
	rm -rf $(BUILD) .pytest_cache
