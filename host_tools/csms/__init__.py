"""Bench CSMS: an OCPP 1.6J / 2.0.1 server with an HTTP API and fault injection.

    from host_tools.csms import start_csms
    server = await start_csms(port=0, db_path=":memory:")
"""
from host_tools.csms.server import CsmsServer, start_csms

__all__ = ("CsmsServer", "start_csms")
