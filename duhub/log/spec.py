"""What a --log (or $DUHUB_LOG) names: a Kafka topic (kafka://…) or a data directory.

Every other text is a directory path, so a mistyped Kafka URL (`kafka//host:9092`,
`kafka:/host:9092`, `Kafka://host:9092`) was taken for one: ingest made
./kafka/host:9092/events.log, loaded the reference data into it and served.
"""

from __future__ import annotations

KAFKA = "kafka://"


def log_problem(spec: str) -> str | None:
    """Return why `spec` is neither a Kafka URL nor a directory path it will use, or None.
    Text starting "kafka" in any case is taken for a mistyped Kafka URL unless it starts with
    the well-formed `kafka://`; a directory of that name is given as ./kafka…"""
    if spec.startswith(KAFKA) or spec[:5].lower() != "kafka":
        return None
    rest = spec[5:]
    # kafka//h:p, kafka:/h:p, Kafka://h:p: the URL meant is plain to see.
    meant = f"kafka://{rest.lstrip(':/')}" if rest[:1] in (":", "/") else "kafka://HOST:PORT"
    return (
        f"is neither kafka://HOST:PORT nor a directory path it will use: give {meant} "
        f"(lower case, both slashes), or a directory of that name as ./{spec}"
    )


def is_kafka(spec: str) -> bool:
    """Return whether `spec` names a Kafka log, not a data directory; ValueError naming --log
    for a mistyped Kafka URL (log_problem)."""
    problem = log_problem(spec)
    if problem:
        raise ValueError(f"--log: {spec!r} {problem}")
    return spec.startswith(KAFKA)
