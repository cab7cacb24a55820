"""`duhub up`: the whole hub in one process on the embedded default."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from duhub.bootstrap import Hub, HubConfig

log = logging.getLogger("duhub")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    data_dir = Path(args.data_dir).resolve()
    hub = Hub(HubConfig(data_dir=data_dir, listen=args.listen))
    hub.start()
    simulator = None
    if not args.no_simulate:
        from duhub.simulate import Simulator

        simulator = Simulator(hub.address, data_dir, rate=args.rate)
        simulator.start()
    host = hub.address
    print(f"""
duhub is up.
  gRPC (ingest + query):  {host}   (health and reflection served; try: grpcurl -plaintext {host} list)
  data:                   {data_dir}  (log: events.log, read model: readmodel.db)
  county nodes:           {'simulated (live demo); --no-simulate for real use' if simulator else 'none simulated: publish with duhub publish FILE'}
Look at it with:
  DUHUB_TARGET={host} duhub query stats --metric visits,problems_found,problems_rectified --group-by unit
  DUHUB_TARGET={host} duhub campaigns
  DUHUB_TARGET={host} duhub query coverage --campaign <id from 'duhub campaigns'>
Stop with Ctrl-C.
""", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        if hub.tailer.error is not None:
            log.error("the aggregator stopped: %s", hub.tailer.error)
            break
    if simulator is not None:
        simulator.stop()
    hub.stop()
    return 1 if hub.tailer.error is not None else 0
