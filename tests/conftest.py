"""Shared by every test."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _sigpipe_as_it_was() -> Iterator[None]:
    """Give SIGPIPE back its handler after each test. `duhub.cli.main.main` sets it to the
    default (a command piped into head stops quietly), which lasts for the whole process when
    a test calls main in-process: a later server writing to a closed connection (the
    dashboard's HTTP server, a client gone) then killed pytest itself, exit 141, mid-run."""
    before = signal.getsignal(signal.SIGPIPE)
    yield
    signal.signal(signal.SIGPIPE, before)


@pytest.fixture
def file_size_limit():  # type: ignore[no-untyped-def]
    """Set RLIMIT_FSIZE: a write past it fails with EFBIG, as a full disk fails with ENOSPC."""
    import resource

    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def limit(size: int | None) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft if size is None else size, hard))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, old_handler)
