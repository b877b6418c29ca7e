# Bench CSMS on its own: `make csms` (CSMS_ARGS for more options, e.g.
# CSMS_ARGS="--id-tag TAG1 --message-log build/ocpp.jsonl").
CSMS_HOST ?= 127.0.0.1
CSMS_PORT ?= 8180
CSMS_DB   ?= build/csms.sqlite
CSMS_ARGS ?=

.PHONY: csms
csms: setup
	@mkdir -p $(dir $(CSMS_DB))
	$(PY) -m host_tools.csms --host $(CSMS_HOST) --port $(CSMS_PORT) --db $(CSMS_DB) $(CSMS_ARGS)
