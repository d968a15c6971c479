# The two commands the README promises; each installs what it needs first.
#   make run   - the pipeline end to end on generated data in ./lake (make run-nights: night by night)
#   make test  - the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# The Delta Spark connector's jars, resolved by mvn from conf/jars/pom.xml.
JARS_STAMP := jars/.installed
# The Spark driver's class-data-sharing archive (scripts/class_archive.py): a quicker start for every stage.
CLASS_ARCHIVE := jars/spark-driver.jsa

.PHONY: run run-nights test install tools clean

install: $(STAMP) $(JARS_STAMP) $(CLASS_ARCHIVE)

$(STAMP): conf/requirements.lock pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	# Every dependency at the version the lock pins (scripts/lock.sh makes it from requirements.txt).
	$(VENV)/bin/python -m pip install --quiet -r conf/requirements.lock
	# The project itself, editable, with the venv's own setuptools (nothing more to download).
	$(VENV)/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(JARS_STAMP): conf/jars/pom.xml scripts/install_jars.sh
	bash scripts/install_jars.sh jars
	touch $(JARS_STAMP)

$(CLASS_ARCHIVE): $(STAMP) $(JARS_STAMP) scripts/class_archive.py
	$(VENV)/bin/python scripts/class_archive.py $(CLASS_ARCHIVE)

run: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/run_local.sh

# The longer demonstration: night by night from an empty lake (about two hours).
run-nights: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH bash scripts/run_nights.sh

test: install tools
	$(VENV)/bin/python -m pytest

# What the tests call outside Python: Debian's docker-compose validates docker-compose.yml, and Debian's
# chromium renders the dashboard headless.
APT_TOOLS := docker-compose chromium
tools:
	@missing=""; for tool in $(APT_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing >/dev/null; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq $$missing >/dev/null; fi; fi

clean:
	rm -rf lake spark-warehouse airflow_home jars
