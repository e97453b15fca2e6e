# Benchmarks (bench/README.md). `make bench` runs every scenario at full size against Backchannel
# and the floor, then writes docs/performance.md; `make bench-quick` runs the small sizes.
# Choose with SCENARIOS="broadcast busy" and TARGETS=backchannel,floor.
PYTHON ?= .venv/bin/python
SCENARIOS ?=
TARGETS ?= backchannel,floor

.PHONY: bench bench-quick bench-report

bench:
	$(PYTHON) -m bench $(SCENARIOS) --targets $(TARGETS)
	$(PYTHON) -m bench report

bench-quick:
	$(PYTHON) -m bench $(SCENARIOS) --quick --targets $(TARGETS)
	$(PYTHON) -m bench report

bench-report:
	$(PYTHON) -m bench report
