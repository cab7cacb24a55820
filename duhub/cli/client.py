"""How the command line reaches a running hub."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import grpc

from duhub.bootstrap import DEFAULT_LISTEN

# Exit codes that scripts can rely on.
EXIT_OK = 0
EXIT_REJECTED = 1  # publish: some events were rejected
EXIT_USAGE = 2  # bad arguments or a question the hub cannot answer as asked
EXIT_UNREACHABLE = 3  # the hub did not answer


def target(arg: str | None) -> str:
    return arg or os.environ.get("DUHUB_TARGET") or DEFAULT_LISTEN


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 32 * 1024 * 1024),
            ("grpc.max_send_message_length", 32 * 1024 * 1024),
        ],
    )


def fail(message: str, code: int) -> NoReturn:
    print(f"duhub: {message}", file=sys.stderr)
    raise SystemExit(code)


def fail_rpc(e: grpc.RpcError, address: str) -> NoReturn:
    status = e.code()  # type: ignore[attr-defined]
    detail = e.details()  # type: ignore[attr-defined]
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        fail(
            f"no hub answers at {address} ({detail}); start one with 'duhub up' or set "
            f"--target / DUHUB_TARGET",
            EXIT_UNREACHABLE,
        )
    if status in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
        fail(detail, EXIT_USAGE)
    fail(f"{status.name}: {detail}", EXIT_UNREACHABLE)
