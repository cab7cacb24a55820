from tests.proto_fresh import stale_files


def test_generated_code_matches_the_proto_files() -> None:
    assert stale_files() == []
