# The README's two commands. Everything they need is installed by scripts/install.sh.
VENV ?= .venv

.PHONY: loop demo test lint install

loop:   ## install, then the main job: cold start and one turn of the self-evolving loop on the embedded model, and a before/after scorecard on the test split
	scripts/install.sh
	$(VENV)/bin/wow-ray flywheel demo

demo:   ## install, then start a local Ray, serve the food_delivery dialogue service (agents + vLLM) and hold one short dialogue
	scripts/install.sh
	$(VENV)/bin/wow-ray demo

test:   ## install with the test tools, then run the whole suite (slow tests included)
	scripts/install.sh dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

install:
	scripts/install.sh dev
