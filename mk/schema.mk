# Validation tables generated from the ocpp package's JSON schemas.
.PHONY: codegen-check

# Exit 1 if a committed table differs from what `make codegen` would write.
codegen-check: setup
	$(PY) -m host_tools.codegen_schemas --check
