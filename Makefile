# Benchmarks (bench/README.md). `make bench` runs every scenario at full size against Backchannel,
# the floor and the three peers, then writes docs/performance.md; `make bench-quick` runs the
# small sizes (under 10 minutes on 2 cores). Choose with SCENARIOS="broadcast busy" and
# TARGETS=backchannel,floor.
PYTHON ?= .venv/bin/python
SCENARIOS ?=
TARGETS ?= backchannel,floor,tutorial,broadcaster,socketio

.PHONY: bench bench-quick bench-report

bench:
	$(PYTHON) -m bench $(SCENARIOS) --targets $(TARGETS)
	$(PYTHON) -m bench report

bench-quick:
	$(PYTHON) -m bench $(SCENARIOS) --quick --targets $(TARGETS)
	$(PYTHON) -m bench report

bench-report:
	$(PYTHON) -m bench report
