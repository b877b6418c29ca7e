# Chaos: the emulated charger (a subprocess, journal with fsync) killed with
# SIGKILL at random moments and restarted on the same state directory, its
# sessions checked against the bench CSMS's records and the simulated meter.
#   make chaos                              200 cycles, a new seed (printed)
#   make chaos CHAOS_SEED=11 CHAOS_CYCLES=50
#   make chaos CHAOS_ARGS=--faults          the CSMS misbehaves at random too
# Work files (CSMS database, OCPP log, emulator output, report.json) in build/chaos.
CHAOS_CYCLES ?= 200
CHAOS_SEED   ?=
CHAOS_ARGS   ?=

.PHONY: chaos
chaos: setup
	$(PY) -m host_tools.chaos --cycles $(CHAOS_CYCLES) --workdir build/chaos --json build/chaos/report.json $(if $(CHAOS_SEED),--seed $(CHAOS_SEED)) $(CHAOS_ARGS)
