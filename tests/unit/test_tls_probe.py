"""Which addresses a command probes with a handshake of its own (duhub.cli.tls_probe); the
handshakes themselves are tested against a real hub in tests/e2e/test_auth.py."""

from duhub.cli.tls_probe import host_port, probe


def test_plain_addresses_are_probed_and_those_grpc_resolves_itself_are_not() -> None:
    assert host_port("127.0.0.1:50051") == ("127.0.0.1", 50051)
    assert host_port("hub.example.org:443") == ("hub.example.org", 443)
    assert host_port("[::1]:50051") == ("::1", 50051)
    for address in ("dns:///hub:50051", "unix:/tmp/hub.sock", "ipv4:10.0.0.5:50051", "hub", ":1"):
        assert host_port(address) is None, address


def test_nothing_listening_is_no_handshake_problem() -> None:
    # A closed port: the command's "no hub answers" stands (not blamed on credentials).
    assert probe("127.0.0.1:1", None) is None
    assert probe("127.0.0.1:1", b"not a CA") is None
