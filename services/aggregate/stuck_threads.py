"""End a stopped worker's process even when a thread that is not a daemon will not stop.

Faust's consumer thread is not a daemon. Stopped by a signal while it was joining the group,
it waited for the main loop to handle the assignment, and the loop, stopping, never did: the
loop gave up on it and closed, and then Python's exit waited for the thread to end, for ever
(until SIGKILL; 2 of ~50 runs with TERM sent in that moment). Nothing rests on that thread once
the worker has stopped: the positions live in the read model.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time

log = logging.getLogger(__name__)

# Threads that are ending anyway (an executor's, told to shut down as the loop closed) get
# this long before they count as stuck.
GRACE_S = 3.0


def stuck(grace_s: float = GRACE_S) -> list[str]:
    """Return the names of the threads, other than this one, that are not daemons and are
    still alive after up to `grace_s` seconds in all."""
    deadline = time.monotonic() + grace_s
    left = []
    for t in threading.enumerate():
        if t is threading.current_thread() or t.daemon:
            continue
        t.join(max(0.0, deadline - time.monotonic()))
        if t.is_alive():
            left.append(t.name)
    return left


def exit_past_stuck(code: int, grace_s: float = GRACE_S) -> None:
    """Return when every thread that is not a daemon has ended (within `grace_s`); else say
    which did not and end the process now with `code`."""
    left = stuck(grace_s)
    if not left:
        return
    log.warning("stopped, but thread(s) %s did not end; exiting without them", ", ".join(left))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
