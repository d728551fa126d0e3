"""Debug mode's warning nobody can miss: who can reach the debugger, and
how to keep it to this machine, for the network the container has
(DEBUG_HOST, settings/defaults.py). Said once the settings are resolved,
before the dev server starts (`python3 -m flaskbox prepare debug`)."""

from __future__ import annotations

from ..record import Record

RULE = "*" * 72


def lines(settings: Record, host_network: bool) -> list[str]:
    host, port = settings["DEBUG_HOST"], settings["PORT"]
    if host_network and host == "127.0.0.1":
        reach = [f"It listens on 127.0.0.1:{port} only (the host's network; DEBUG_HOST):",
                 f"http://127.0.0.1:{port}/ on this machine. DEBUG_HOST=0.0.0.0 would open it",
                 "to your whole network."]
    elif host_network:
        reach = [f"It listens on {host}:{port} of the host's network (DEBUG_HOST); 0.0.0.0 is",
                 "EVERY interface of this machine, your whole network. Unset DEBUG_HOST to",
                 "keep it on 127.0.0.1."]
    else:
        reach = [f"-p {port}:{port} publishes the port on EVERY interface of the host, to",
                 "your whole network. Publish it on this machine only:",
                 f"    docker run -p 127.0.0.1:{port}:{port} ..."]
    return [RULE,
            "WARNING: debug mode. The Werkzeug debugger runs any Python code typed",
            f"into its browser console: whoever reaches port {port} and has the",
            "\"Debugger PIN\" printed below can run code in this container.",
            *reach,
            "Never use debug mode in production.",
            RULE]
