# Reliability under faults: the chaos proxy and the soak of a fleet.
#   make soak [SOAK_MINUTES=10] [SOAK_CHARGERS=200] [SOAK_ARGS="--seed 7 --restarts 2"]
#   make chaos-proxy CHAOS_ARGS="--upstream 127.0.0.1:8180 --listen 127.0.0.1:9000 --random '{...}'"
SOAK_MINUTES  ?= 10
SOAK_CHARGERS ?= 200
SOAK_ARGS     ?=
CHAOS_ARGS    ?=

.PHONY: soak chaos-proxy

soak: setup
	$(PY) -m host_tools.soak --minutes $(SOAK_MINUTES) --chargers $(SOAK_CHARGERS) --json build/soak-result.json $(SOAK_ARGS)

chaos-proxy: setup
	@test -n "$(CHAOS_ARGS)" || { echo 'usage: make chaos-proxy CHAOS_ARGS="--upstream HOST:PORT [--listen HOST:PORT] [--seed N] [--random JSON] [--schedule JSON] [--replay LOG] [--log FILE]"'; exit 2; }
	$(PY) -m host_tools.chaos_proxy $(CHAOS_ARGS)
