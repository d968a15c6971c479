# The two commands the README promises; each installs what it needs first.
#   make run   - the pipeline end to end on generated data in ./lake
#   make test  - the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test install clean

install: $(STAMP)

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

run: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/run_local.sh

test: $(STAMP)
	$(VENV)/bin/python -m pytest

clean:
	rm -rf lake spark-warehouse airflow_home
