"""Bench CSMS: an OCPP 1.6J / 2.0.1 server with an HTTP API and fault injection.

    from host_tools.csms import start_csms
    server = await start_csms(port=0, db_path=":memory:")

The server stack is imported on first use, so the command-line client
(host_tools.csms.cli) starts without it.
"""

__all__ = ("CsmsServer", "start_csms")


def __getattr__(name):
    if name in __all__:
        from host_tools.csms import server

        return getattr(server, name)
    raise AttributeError(name)
