# Validation tables per OCPP version, generated from the official JSON schemas
# by host_tools/codegen_schemas.py (`make codegen`). Imported lazily: a charger
# speaking 1.6 never loads the 2.x tables.
from firmware.ocpp.errors import V16, V201, V21
from firmware.ocpp.validate import prepare


def load(version):
    """The table module of a version id (errors.V16/V201/V21).

    It exposes ACTIONS = {action: (request_node, response_node)}; nodes are
    checked with firmware.ocpp.validate.check. ValueError for other versions.
    """
    if version == V16:
        from firmware.ocpp.schemas import v16 as m
    elif version == V201:
        from firmware.ocpp.schemas import v201 as m
    elif version == V21:
        from firmware.ocpp.schemas import v21 as m
    else:
        raise ValueError("unknown OCPP version: %s" % version)
    if not getattr(m, "_prepared", False):
        prepare(m.ACTIONS)
        m._prepared = True
    return m
