"""Under `--log-format json`, keep gRPC's C core from writing its own plain-text lines.

The C core logs a few errors itself, straight to stderr (a port in use: `E1205 …
add_port.cc:83] Failed to add port …`), whatever Python's logging is: one line a collector
reading JSON lines cannot parse. It reads GRPC_VERBOSITY once, as grpc is imported, so this
must run before anything imports grpc; duhub's own records already say why (`--listen: cannot
bind …`). A GRPC_VERBOSITY the user set is theirs (e.g. `debug` to see the core's reasons).
"""

from __future__ import annotations

import os
import sys


def asks_json_logs(argv: list[str]) -> bool:
    return "--log-format=json" in argv or ["--log-format", "json"] in (
        argv[i : i + 2] for i in range(len(argv))
    )


def quiet_grpc_core(argv: list[str]) -> None:
    """Set GRPC_VERBOSITY=NONE when `argv` asks for json logs and the environment sets none
    (too late once grpc is loaded: then nothing is changed)."""
    if asks_json_logs(argv) and "grpc" not in sys.modules:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
