"""An OpenAPI 3.1 description generated from api.ROUTES."""
import re

from host_tools.csms.problems import CONTENT_TYPE

_PARAM = re.compile(r"{(\w+)}")


def document(routes, base_url):
    paths = {}
    for method, path, handler, cls, role, summary in routes:
        op = {
            "summary": summary,
            "operationId": handler.__name__,
            "x-rate-limit-class": cls,
            "responses": {
                "default": {"description": "Problem details (RFC 9457)",
                            "content": {CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        }
        if role is not None:
            op["security"] = [{"bearer": []}]
            op["x-role"] = role
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in _PARAM.findall(path)]
        if params:
            op["parameters"] = params
        if method in ("POST", "PUT"):
            op["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
        op["responses"]["200"] = {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bench CSMS API", "version": "1"},
        "servers": [{"url": base_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": {"type": "object", "properties": {
                "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                "detail": {"type": "string"}, "instance": {"type": "string"}, "request_id": {"type": "string"},
                "error": {"type": "object", "properties": {"type": {"type": "string"},
                                                            "details": {"type": "string"}}},
                "field_errors": {"type": "object", "additionalProperties": {"type": "array",
                                                                             "items": {"type": "string"}}},
            }}},
        },
    }
