# Two commands on a fresh Linux machine (see README):
#   make demo   set everything up, index the shared data's test split with the bundled model, search one case
#   make test   set everything up and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= $(or $(M3RET_DATA),../shared/data)

.PHONY: setup demo test bench package package-smoke

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[app,train,dev,package,pacs,cluster]"
	@$(BIN)/python -m app.platform_check  # names the apt packages the desktop app still needs, if any

demo: setup
	$(BIN)/python -m engine.demo --data "$(DATA)"

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/pip install -q -e ".[bench]"
	$(BIN)/python -m benchmarks.run_all

# One folder dist/m3ret/ with two executables (m3ret-app, m3ret), no torch inside (see packaging/README.md):
# pyinstaller --noconfirm pyinstaller.spec, then the bundle check (size, no torch); smoke test: make package-smoke.
package: setup
	PYTHON=$(BIN)/python packaging/build.sh

package-smoke: package
	$(BIN)/python packaging/smoke_test.py --report packaging/LAST_SMOKE_RUN.md
