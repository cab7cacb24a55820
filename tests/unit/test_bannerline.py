"""Banner lines: every label's value starts in the one column operators read it in."""

from __future__ import annotations

from duhub.cli.bannerline import LABEL_WIDTH, banner_line

LABELS = (
    "gRPC (ingest + query)", "security", "dashboard", "metrics", "log", "read model",
    "county nodes", "build",
)  # fmt: skip


def test_every_label_puts_its_value_in_one_column() -> None:
    for label in LABELS:
        line = banner_line(label, "VALUE")
        assert line.startswith(f"  {label}: "), line
        assert line.index("VALUE") == 2 + LABEL_WIDTH, line


def test_the_widest_label_keeps_two_spaces_before_its_value() -> None:
    assert banner_line("gRPC (ingest + query)", "127.0.0.1:50051") == (
        "  gRPC (ingest + query):  127.0.0.1:50051"
    )
