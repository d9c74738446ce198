# The two commands of the README, and what they need.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test down venv

# Run the pipeline end to end on a sample clip and print the counts read back from ClickHouse.
demo: venv
	$(VENV)/bin/camcount -c config/example.yaml demo

# Install, start Kafka and ClickHouse, run the whole test suite (unit + integration).
test: venv
	bash scripts/test.sh

# Stop the local Kafka and ClickHouse started by infra/up.sh.
down:
	bash infra/down.sh

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)
