"""Keep gRPC's C core from writing its own plain-text lines where duhub says it better.

The C core logs a few things itself, straight to stderr, whatever Python's logging is:
- a server's errors (a port in use: `E1205 … add_port.cc:83] Failed to add port …`): one line
  a collector reading JSON lines cannot parse, so under `--log-format json` it says nothing;
- a client's failed TLS handshakes (`I1205 … ssl_transport_security.cc] Handshake failed …`,
  one per attempt, a dozen in a publish that retries): a client command says what failed in
  one line of its own (duhub.cli.tls_probe), so it keeps the core to its errors.
It reads GRPC_VERBOSITY once, as grpc is imported, so this must run before anything imports
grpc. A GRPC_VERBOSITY the user set is theirs (e.g. `debug` to see the core's reasons).
"""

from __future__ import annotations

import os
import sys

# The commands that serve: every other one is a client of a hub (or touches no network).
SERVING = {"up", "serve"}


def asks_json_logs(argv: list[str]) -> bool:
    return "--log-format=json" in argv or ["--log-format", "json"] in (
        argv[i : i + 2] for i in range(len(argv))
    )


def quiet_grpc_core(argv: list[str]) -> None:
    """Set GRPC_VERBOSITY=NONE when `argv` asks for json logs, and ERROR for a client command,
    when the environment sets none (too late once grpc is loaded: then nothing is changed)."""
    if "grpc" in sys.modules:
        return
    if asks_json_logs(argv):
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    elif not argv or argv[0] not in SERVING:
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
