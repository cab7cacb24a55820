"""Tables of the read model. Every row is derived from the log and can be rebuilt by replay."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

# Subtrees are ranges of paths: they must compare byte by byte. PostgreSQL's default
# collation may not (en_US orders punctuation loosely), so paths use "C" there.
PathText = Text().with_variant(Text(collation="C"), "postgresql")

# Unit paths look like "/420500/420581/420581101/": a subtree is a range of paths, which
# '/' (never in an id) keeps exact; see `subtree_range`.
units = Table(
    "units",
    metadata,
    Column("unit_id", String(64), primary_key=True),
    Column("parent_id", String(64), nullable=False, index=True),
    Column("level", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("path", PathText, nullable=False, index=True),
    # When the hub learnt of it: as-of questions leave out units registered later.
    Column("recorded_at", BigInteger, nullable=False),
    Column("sample", Boolean, nullable=False),
    Column("local_code", Boolean, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("area", String(32), nullable=False),
    Column("starts_at", BigInteger, nullable=False),
    Column("ends_at", BigInteger, nullable=False),
    Column("source", String(64), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
)

campaign_groups = Table(
    "campaign_groups",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("group_id", String(64), primary_key=True),
    Column("ordinal", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("tier", Integer, nullable=False),
)

campaign_targets = Table(
    "campaign_targets",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("group_id", String(64), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("ordinal", Integer, nullable=False),
    Column("unit_path", PathText, nullable=False),
)

# One row per covered target: the earliest covering visit by event time and by record time
# (the latter answers as-of questions).
coverage = Table(
    "coverage",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("group_id", String(64), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("first_at", BigInteger, nullable=False),
    Column("first_recorded_at", BigInteger, nullable=False),
    # The county the target lies in ("" for the city itself): an answer counts the covered
    # targets per group and county in SQL and reads the rows of a (group, county) only
    # where some of its targets are covered and some not.
    Column("county_id", String(64), nullable=False, server_default=""),
    # The covering visit at `first_at` (of two at that moment, the lesser event id, whatever
    # order they were applied in): lineage names it. NULL where a read model made before it
    # cannot tell (`layout.py`).
    Column("first_event_id", String(128), nullable=True),
    # Every coverage answer reads from this index alone, not the index and then the table
    # row by row. Read models made before it get it on open (`layout.py` drops the index
    # it replaces, by campaign, group and unit).
    Index(
        "ix_coverage_campaign_counties",
        "campaign_id",
        "group_id",
        "county_id",
        "first_at",
        "first_recorded_at",
        "unit_id",
    ),
)

# When each target was first covered as the hub learned it: a row per covering visit that
# lowered its target's earliest event time among the visits recorded up to it (the Pareto
# front of record time against event time). An as-of answer takes, per target, the earliest
# event time of the rows recorded by then: `coverage` keeps the two minimums apart, and a
# visit dated earlier but recorded later would move an as-of `full_at` to before it was known.
coverage_firsts = Table(
    "coverage_firsts",
    metadata,
    Column("campaign_id", String(64), primary_key=True),
    Column("group_id", String(64), primary_key=True),
    Column("unit_id", String(64), primary_key=True),
    Column("recorded_at", BigInteger, primary_key=True),
    Column("county_id", String(64), nullable=False),
    Column("first_at", BigInteger, nullable=False),
    # The visit of this row (lineage of as-of coverage); NULL as in `coverage.first_event_id`.
    Column("event_id", String(128), nullable=True),
    sqlite_with_rowid=False,
)

problems = Table(
    "problems",
    metadata,
    Column("problem_id", String(128), primary_key=True),
    Column("unit_id", String(64), nullable=False),
    Column("area", String(32), nullable=False),
    Column("found_at", BigInteger, nullable=False),
    Column("rectified_at", BigInteger, nullable=True),
    # The events that found and rectified it: lineage of problems_open names them.
    Column("found_event_id", String(128), nullable=False),
    Column("rectified_event_id", String(128), nullable=True),
    Column("rectified_recorded_at", BigInteger, nullable=True),
)

letters = Table("letters", metadata, Column("letter_id", String(128), primary_key=True))

events_seen = Table(
    "events_seen",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("digest", LargeBinary(32), nullable=False),
    Column("source", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("occurred_at", BigInteger, nullable=False),
    # Where the event sits in the log: lineage names it.
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
    UniqueConstraint("source", "seq", name="uq_events_seen_source_seq"),
    # Clustered on the key: one B-tree to write per event instead of a table and its index.
    sqlite_with_rowid=False,
)

# The last chained event of each source: ingest links the next one to its hash.
source_heads = Table(
    "source_heads",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("last_hash", LargeBinary(32), nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_event_id", String(128), nullable=False),
)

# Sums per scope unit (every ancestor of the event's unit), metric, area and time bucket.
rollups = Table(
    "rollups",
    metadata,
    Column("scope_id", String(64), primary_key=True),
    Column("grain", Integer, primary_key=True),
    Column("metric", String(40), primary_key=True),
    Column("area", String(32), primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("value", BigInteger, nullable=False),
    # How many events make up the value: audit reports print it beside the figure.
    Column("events", BigInteger, nullable=False),
    # Clustered on the key: each upsert touches one B-tree, and a question reads neighbours.
    sqlite_with_rowid=False,
)

# As-of questions read the facts recorded after a moment by this index (named in SQLite).
RECORDED_AT_INDEX = "ix_facts_recorded_at"

# One row per counted figure of an event: answers the period edges rollups do not cover
# (sub-hour; sub-day below the counties) and lineage.
facts = Table(
    "facts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("metric", String(40), nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("unit_path", PathText, nullable=False),
    Column("area", String(32), nullable=False),
    Column("value", BigInteger, nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    # The campaign and group a visit names (NULL for other facts, and visits of no campaign):
    # figures per group of a campaign (`group_figures.py`). A read model made before has them
    # from the log (FACT_CAMPAIGNS, `fact_campaigns.py`).
    Column("campaign_id", String(64), nullable=True),
    Column("group_id", String(64), nullable=True),
    Index("ix_facts_metric_at", "metric", "at"),
    # As-of questions subtract what was recorded after the moment asked about.
    Index(RECORDED_AT_INDEX, "recorded_at"),
    # A campaign's visits in a period, per group, from the index alone; only the facts that
    # name a campaign are in it, so the others cost it no write.
    Index(
        "ix_facts_campaign",
        "campaign_id",
        "metric",
        "at",
        "group_id",
        "value",
        postgresql_where=text("campaign_id IS NOT NULL"),
        sqlite_where=text("campaign_id IS NOT NULL"),
    ),
)

# Events the aggregator could not apply (Kafka-direct events failing the rules), with why.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("partition", Integer, primary_key=True),
    Column("offset", BigInteger, primary_key=True),
    # What the record's value names (`convert.event_id_of`): "" when it is no Event.
    Column("event_id", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    # The source the value names (`convert.source_of`): NULL when it names none. Who may list
    # it (`duhub deadletters`); a read model made before has it from the log
    # (DEAD_LETTER_SOURCES, `dead_letter_fill.py`).
    Column("source", String(64), nullable=True),
    # When the hub recorded the record (`convert.recorded_at`): NULL when it cannot tell (no
    # stamped Event in the embedded log).
    Column("recorded_at", BigInteger, nullable=True),
    Index("ix_dead_letters_recorded_at", "recorded_at"),
)

# The reference events this read model was last found to hold, as loaded (one row): how many,
# from seq 1, and the SHA-256 of their digests one after another. A restart with the same file
# compares this fingerprint instead of reading and comparing every reference event
# (duhub/readmodel/reference.py). Not derived from the log: a cache, rebuilt when missing.
# `rules`: the version of the rules those units were last checked by (REFERENCE_RULES); a
# start with the same file under those rules does not check each unit again. NULL: a mark
# written before 2026-12-05, whose units are checked once more.
reference_loaded = Table(
    "reference_loaded",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("units", BigInteger, nullable=False),
    Column("fingerprint", LargeBinary(32), nullable=False),
    Column("rules", Integer, nullable=True),
)

# Changes of layout a read model made by an earlier version has had applied, by name: each
# applied once (`duhub/readmodel/layout.py`), whoever opens the read model first.
layout = Table(
    "layout",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("applied_at", BigInteger, nullable=False),
)

# The next log offset to apply, per partition: written in the same transaction as the rows
# it produced, so a restart resumes exactly where the committed state ends.
log_positions = Table(
    "log_positions",
    metadata,
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    # The last record applied (dead-lettered and duplicates too): its offset and the hash of
    # its key and value (`duhub.log.identity`). A service starting compares it with the log's
    # record there: a log made again that grew past next_offset holds another. NULL in a read
    # model made before them (`layout.py`) until a batch of the partition commits.
    Column("last_offset", BigInteger, nullable=True),
    Column("last_hash", BigInteger, nullable=True),
    # next_offset as last set by a writer that knows this read model's layout (since
    # 2026-12-06; LAYOUT_MARKS), in the same statement. A build before it moves next_offset
    # and leaves this behind: the sign that it wrote rows around tables it did not know, which
    # a start of this build refuses (`layout.check_written`).
    Column("layout_offset", BigInteger, nullable=True),
)


def unit_path(path: tuple[str, ...]) -> str:
    return "/" + "/".join(path) + "/"


def county_of(path: str) -> str:
    """Return the county of a unit path ("/city/county/.../"): the county itself for a
    county, "" for the city."""
    parts = path.split("/")
    return parts[2] if len(parts) > 3 else ""


def subtree_range(path: str) -> tuple[str, str]:
    """Return [lo, hi) such that every path in the subtree of `path` lies in it."""
    # '0' is the character right after '/', so path[:-1] + '0' bounds the prefix.
    return path, path[:-1] + "0"
