# The agent on the MicroPython unix port, and its heap.
#   make mp-run ARGS="--csms ws://127.0.0.1:8180/ocpp --id CP1 --console tcp:127.0.0.1:7001"
#                              the whole agent under `micropython` on the unix board
#   make bench BENCH=mpheap    heap figures against the targets (64-bit; 32-bit when built)
ARGS    ?=

.PHONY: mp-run

mp-run: setup
	$(MPY) -m firmware --board unix --state-dir build/mp-state $(ARGS)
