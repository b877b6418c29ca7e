# The agent on the MicroPython unix port, and its heap.
#   make mp-run ARGS="--csms ws://127.0.0.1:8180/ocpp --id CP1 --console tcp:127.0.0.1:7001"
#                              the whole agent under `micropython` on the unix board
#   make bench BENCH=mpheap    heap figures against the targets (64-bit; 32-bit when built)
#   make mp32 MPY_SRC=/path/to/micropython
#                              32-bit unix ports (gcc -m32) for ESP32-sized figures
MPY_SRC ?=
ARGS    ?=

.PHONY: mp-run mp32

mp-run: setup
	$(MPY) -m firmware --board unix --state-dir build/mp-state $(ARGS)

mp32: setup
	@test -n "$(MPY_SRC)" || { echo "usage: make mp32 MPY_SRC=/path/to/micropython (with lib/axtls; needs gcc-multilib)"; exit 2; }
	$(PY) -m host_tools.mp32 --src $(MPY_SRC) --out build/mp32
