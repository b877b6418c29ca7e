# Hardware: compile to .mpy, flash a board, regenerate the packaging files.
#   make flash PORT=/dev/ttyUSB0 [BOARD=esp32_devkit|picow] [CONFIG=config.json]
#   make mpy [BOARD=...]           compile only, into build/mpy/$(BOARD)
#   make packaging                 regenerate package.json and manifest.py
#   make sim-meter [MODEL=SDM120]  a simulated meter behind a pty, for a real master
BOARD  ?= esp32_devkit
CONFIG ?=
MODEL  ?= SDM630

.PHONY: flash mpy packaging sim-meter

flash: setup
	@test -n "$(PORT)" || { echo "usage: make flash PORT=/dev/ttyUSB0 [BOARD=esp32_devkit|picow] [CONFIG=config.json]"; exit 2; }
	$(PY) -m host_tools.flash flash --port $(PORT) --board $(BOARD) $(if $(CONFIG),--config $(CONFIG))

mpy: setup
	$(PY) -m host_tools.flash compile --board $(BOARD)

packaging: setup
	$(PY) -m host_tools.flash package-json
	$(PY) -m host_tools.flash manifest

sim-meter: setup
	$(PY) -m host_tools.sim_meter --model $(MODEL)
