# Transport (firmware/net): fuzz the WebSocket frame parser against its
# oracle on both runtimes. FUZZ_CASES and FUZZ_SEED may be set on the command line.
FUZZ_CASES ?= 100000
FUZZ_SEED  ?= 1

fuzz: fuzz-ws

.PHONY: fuzz-ws
fuzz-ws: setup
	$(PY) tests/fuzz_ws.py $(FUZZ_CASES) $(FUZZ_SEED)
	$(MPY) -X heapsize=4M tests/fuzz_ws.py $(FUZZ_CASES) $(FUZZ_SEED)
