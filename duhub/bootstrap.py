"""The composition root: build the hub's parts from configuration. Nothing is wired at import."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Engine, func, select

from duhub.feed import ChangeFeed
from duhub.log.base import EventLog
from duhub.log.embedded import EmbeddedLog
from duhub.readmodel import schema as s
from duhub.readmodel.engine import open_engine
from duhub.reference import reference_events
from duhub.v1 import ingest_pb2, ingest_pb2_grpc, query_pb2, query_pb2_grpc
from services.aggregate.embedded import LogTailer
from services.ingest.ingestor import Ingestor
from services.ingest.service import IngestServicer
from services.query.service import QueryServicer

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:50051"
MAX_MESSAGE = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HubConfig:
    data_dir: Path
    listen: str = DEFAULT_LISTEN
    db_url: str = ""
    log_url: str = ""

    @property
    def database(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'readmodel.db'}"


def open_log(spec: str) -> EventLog:
    """Return the log for a data directory path."""
    if spec.startswith("kafka://"):
        raise NotImplementedError("the Kafka log backend is not built yet")
    return EmbeddedLog(spec)


def create_server(
    listen: str,
    *,
    ingest: IngestServicer | None = None,
    query: QueryServicer | None = None,
    workers: int = 32,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Return a started-ready server with the given services, health and reflection."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                 ("grpc.max_send_message_length", MAX_MESSAGE)],
    )
    names = [reflection.SERVICE_NAME, health.SERVICE_NAME]
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if ingest is not None:
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(ingest, server)
        names.append(ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name)
    if query is not None:
        query_pb2_grpc.add_QueryServiceServicer_to_server(query, server)
        names.append(query_pb2.DESCRIPTOR.services_by_name["QueryService"].full_name)
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"listen: cannot bind {listen}")
    for name in ["", *names[2:]]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def units_registered(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(s.units)).scalar_one())


class Hub:
    """Everything in one process on the embedded default: ingest, aggregate, query."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = open_log(config.log_url or str(config.data_dir))
        self.engine = open_engine(config.database)
        self.feed = ChangeFeed()
        self.tailer = LogTailer(self.log, self.engine, self.feed)
        self.ingestor = Ingestor(self.log, self.engine)
        self.server: grpc.Server | None = None
        self.port = 0

    def start(self) -> None:
        # The read model catches up before ingest opens, so ingest checks against all of it.
        applied = self.tailer.catch_up()
        log.info("read model caught up (%d records applied)", applied)
        self.tailer.start()
        if units_registered(self.engine) == 0 and self.log.end_offsets().get(0, 0) == 0:
            results = self.ingestor.publish(reference_events(), allow_reference=True)
            rejected = [r for r in results if r.reason]
            if rejected:
                raise RuntimeError(f"reference data rejected: {rejected[0].reason}")
        self.server, self.port, _ = create_server(
            self.config.listen,
            ingest=IngestServicer(self.ingestor),
            query=QueryServicer(self.engine, self.feed),
        )
        self.server.start()

    @property
    def address(self) -> str:
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def stop(self, grace: float = 2.0) -> None:
        if self.server is not None:
            self.server.stop(grace).wait()
        self.feed.close()
        self.tailer.stop()
        self.log.close()
        self.engine.dispose()
