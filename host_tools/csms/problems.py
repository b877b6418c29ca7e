"""HTTP API errors as Problem Details (RFC 9457), with the stop-charging
`error: {type, details}` object kept alongside for clients written against it.

Body members: `type`, `title`, `status`, `detail`, `instance` (RFC 9457 §3.1),
plus extension members `request_id`, `error` and, for validation failures,
`field_errors` ({field: [message, ...]}). Problems fully described by their
status code use type "about:blank" and the status phrase as title (RFC 9457
§4.2.1); specific problems get a type URI under /api/problems/ that answers
with its own description.
"""
import json

from aiohttp import web

CONTENT_TYPE = "application/problem+json"

# slug: (status, title, error type or None, description)
TYPES = {
    "invalid-json": (400, "Request body is not valid JSON", "invalid_json",
                     "The body could not be parsed as a JSON object."),
    "validation-failed": (400, "Request failed validation", "validation_failed",
                          "One or more fields are missing or invalid; see field_errors."),
    "already-stopped": (409, "Session already stopped", "already_stopped",
                        "The session is already inactive. Treat it as stopped and refresh it."),
    "charging-provider-error": (424, "Charging provider error", "charging_provider_error",
                                "The charger rejected the request, answered with a CALLERROR, "
                                "is offline, or did not answer in time. Do not assume the "
                                "command took effect; refresh the session and retry later."),
    "rate-limited": (429, "Too many requests", "rate_limited",
                     "The client exceeded its rate limit for this class of route. "
                     "Wait for Retry-After seconds."),
    "unexpected-error": (500, "Unexpected error", "unexpected_error",
                         "An unexpected server error. Quote the support code from "
                         "error.details when reporting it."),
}

# Status-only problems: about:blank, title = status phrase, error type.
PLAIN = {
    400: ("Bad Request", "bad_request"),
    401: ("Unauthorized", "unauthorized"),
    403: ("Forbidden", "forbidden"),
    404: ("Not Found", None),  # stop-charging 404s carry `detail` only
    405: ("Method Not Allowed", "method_not_allowed"),
    409: ("Conflict", "conflict"),
    413: ("Payload Too Large", "payload_too_large"),
    415: ("Unsupported Media Type", "unsupported_media_type"),
    500: ("Internal Server Error", "unexpected_error"),
}


class ApiError(Exception):
    """Raised by route handlers; the middleware renders it as problem+json.

    kind: a slug of TYPES or an HTTP status of PLAIN. details: text for
    error.details (defaults to detail). extra: further extension members.
    """

    def __init__(self, kind, detail, details=None, field_errors=None, headers=None, extra=None):
        Exception.__init__(self, detail)
        self.kind = kind
        self.detail = detail
        self.details = details
        self.field_errors = field_errors
        self.headers = headers or {}
        self.extra = extra or {}

    @property
    def status(self):
        if self.kind in TYPES:
            return TYPES[self.kind][0]
        return self.kind


def problem_body(err, base_url, instance, request_id):
    if err.kind in TYPES:
        status, title, error_type, _ = TYPES[err.kind]
        ptype = base_url + "/api/problems/" + err.kind
    else:
        status = err.kind
        title, error_type = PLAIN.get(status, ("Error", "error"))
        ptype = "about:blank"
    body = {
        "type": ptype,
        "title": title,
        "status": status,
        "detail": err.detail,
        "instance": instance,
        "request_id": request_id,
    }
    if error_type is not None:
        body["error"] = {"type": error_type, "details": err.details if err.details is not None else err.detail}
    if err.field_errors:
        body["field_errors"] = err.field_errors
    body.update(err.extra)
    return body


def problem_response(err, request, request_id):
    base = "%s://%s" % (request.scheme, request.host)
    body = problem_body(err, base, request.path, request_id)
    return web.Response(
        status=body["status"],
        text=json.dumps(body),
        content_type=CONTENT_TYPE,
        headers=err.headers,
    )


def describe(slug):
    """The document a problem type URI answers with (JSON), or None."""
    if slug not in TYPES:
        return None
    status, title, error_type, description = TYPES[slug]
    return {"type": slug, "title": title, "status": status, "error_type": error_type,
            "description": description}
