"""Which connection waiting for its head makes room: the one accepted first."""

from __future__ import annotations

import socket

from services.query.http.waiting import WaitingHeads


def test_the_first_accepted_is_closed_first_whatever_order_its_thread_starts_in() -> None:
    # A connection is put in line when accepted and again when its thread starts; the threads
    # may start in any order. The line was the threads' order, so CI's test saw a younger
    # connection closed while the oldest stayed open.
    heads = WaitingHeads(evictable_after=0.0)
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    try:
        heads.waiting(first)  # accepted
        heads.waiting(second)
        heads.waiting(second)  # the second's thread runs first
        heads.waiting(first)
        assert heads.evict_oldest()
        first_peer.settimeout(2)
        assert first_peer.recv(1) == b""  # closed
        second_peer.setblocking(False)
        try:
            second_peer.recv(1)
            raise AssertionError("the younger connection was closed")
        except BlockingIOError:
            pass  # still open
    finally:
        for s in (first, first_peer, second, second_peer):
            s.close()


def test_a_connection_whose_head_came_waits_again_from_its_next_request() -> None:
    heads = WaitingHeads(evictable_after=0.0)
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    try:
        heads.waiting(first)
        heads.waiting(second)
        heads.done(first)  # its head is in; kept alive, it waits for the next one
        heads.waiting(first)
        assert heads.evict_oldest()
        second_peer.settimeout(2)
        assert second_peer.recv(1) == b""
    finally:
        for s in (first, first_peer, second, second_peer):
            s.close()
