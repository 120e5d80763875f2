# Quick start: `make demo` and `make test` each set everything up from scratch.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test install clean bench browser

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[mnist,test,tensorboard]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/genlab demo --out runs/demo --overwrite

test: $(STAMP) browser
	$(PY) -m pytest -q

# headless Chromium for tests/test_report_browser.py (Debian's package; driven over its DevTools pipe, no driver needed)
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium)

bench: $(STAMP)
	$(PY) benchmarks/trainer_overhead.py

clean:
	rm -rf $(VENV) runs .pytest_cache
