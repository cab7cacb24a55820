"""Ingest's mark on its Kafka records (`duhub/log/origin.py`): a record claiming ingest's
origin passes only with the MAC of its value under the hub's origin key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from duhub.cli.main import main
from duhub.log import origin as o


def test_a_key_file_is_made_once_and_read_by_the_others(tmp_path: Path) -> None:
    path = str(tmp_path / "keys" / "origin.key")
    assert main(["certs", "origin-key", "--file", path]) == 0
    key = o.load_key(path)
    assert len(key) == 32 and os.stat(path).st_mode & 0o777 == 0o600
    o._KEYS.clear()  # another process: reads the same file
    assert o.load_key(path) == key
    assert main(["certs", "origin-key", "--file", path]) == 2  # never made over
    assert o.load_key(path) == key


def test_a_process_never_makes_a_key_of_its_own(tmp_path: Path) -> None:
    """One made by each process on its own machine would sign with keys the others refuse:
    a missing file is an error naming it and how to make it."""
    path = tmp_path / "origin.key"
    with pytest.raises(ValueError, match=f"key={path}: no such file: make it once with"):
        o.load_key(str(path))
    assert not path.exists()


def test_a_file_that_is_not_a_key_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "origin.key"
    path.write_text("CHANGE-ME\n")
    with pytest.raises(ValueError, match=f"key={path}: not an origin key"):
        o.load_key(str(path))


def test_only_ingest_signed_values_pass() -> None:
    key, other = b"k" * 32, b"x" * 32
    value = b"\x0a\x03e-1"
    signed = o.ingest_headers(key, value)
    assert o.origin(key, signed, value) == "ingest"
    assert o.origin(key, [], value) == "direct"
    assert o.origin(key, None, value) == "direct"
    assert o.origin(key, signed, value + b"!").startswith("does not match")  # value changed
    assert o.origin(other, signed, value).startswith("does not match")  # another hub's key
    assert o.origin(key, o.ingest_headers(None, value), value).startswith("missing")
    # A hub without a key takes the header at its word (and warns at start).
    assert o.origin(None, o.ingest_headers(None, value), value) == "ingest"
