"""Which Accept-Encoding headers take gzip (RFC 9110 12.5.3), and what gzip makes."""

from __future__ import annotations

import gzip

import pytest

from services.query.http.encoding import accepts_gzip, gzipped


@pytest.mark.parametrize(
    ("header", "takes"),
    [
        ("gzip, deflate, br", True),  # Chromium's
        ("GZIP", True),
        ("x-gzip", True),
        ("deflate, gzip;q=1.0", True),
        ("gzip;q=0.5", True),
        ("gzip;q=0", False),
        ("gzip; q=0.000", False),
        ("gzip;q=yes", False),  # unreadable: not a yes
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),  # named, it is what counts
        ("identity", False),
        ("br", False),
        ("", False),
        (None, False),
    ],
)
def test_accepts_gzip(header: str | None, takes: bool) -> None:
    assert accepts_gzip(header) is takes


def test_the_same_answer_makes_the_same_bytes() -> None:
    data = b'{"targets":["420581101"]}' * 1000
    assert gzipped(data) == gzipped(data)  # no time stamp in the header
    assert gzip.decompress(gzipped(data)) == data
