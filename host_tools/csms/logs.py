"""Request and correlation ids carried through every log line of the bench CSMS.

The HTTP middleware sets `request_id` and `correlation_id` for the duration of
a request (contextvars follow tasks created inside it), so a log line written
anywhere below, and every OCPP message-log record of a CALL the request causes,
carries them.
"""
import contextvars
import logging
import sys
import time

request_id = contextvars.ContextVar("csms_request_id", default="-")
correlation_id = contextvars.ContextVar("csms_correlation_id", default=None)

LOG_FORMAT = "%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s req=%(request_id)s %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record that passes (never filters out)."""

    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


_FILTER = RequestIdFilter()


def get_logger(name):
    """A logger under `csms.` whose records always carry `request_id`."""
    logger = logging.getLogger("csms." + name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def configure_logging(level="INFO", stream=None):
    """Log lines on stderr (UTC, ms), each with the request id, for the CLI entry."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_FILTER)  # also for records of other libraries (aiohttp)
    formatter = logging.Formatter(LOG_FORMAT, DATE_FORMAT)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return handler


def utc_now_iso(ts=None):
    """UTC time with milliseconds, ISO 8601 with Z: 2025-01-31T12:00:00.123Z."""
    if ts is None:
        ts = time.time()
    ms = int(ts * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + ".%03dZ" % ms
