"""`duhub audit verify` and `duhub audit report`: for ops and auditors."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from duhub.audit.chain import audit, audit_to_checkpoint, parse_checkpoint
from duhub.audit.records import CutTail, Record, cut_tails, log_records
from duhub.cli import client
from duhub.cli.startup import FAILURES, failure
from duhub.cli.tables import shown
from duhub.log.embedded import EmbeddedLog

EXIT_TAMPERED = 4


# Said when no record passed the origin key: an auditor given another key than ingest's saw
# every record of the hub named FORGED, with nothing to say the key was the likelier fault.
KEY_SUSPECT = (
    "note: no record claiming ingest's origin passed this origin key: if ingest signs with "
    "another key file, or none, every one of its records is named FORGED here. Verify with "
    "the key file the hub's ingest reads (a worker given another refuses to start)"
)


def verify(args: argparse.Namespace) -> int:
    spec = args.log or str(Path(args.data_dir).resolve())
    until = None
    if args.checkpoint:
        try:
            until = parse_checkpoint(args.checkpoint)
        except ValueError as e:
            client.fail(str(e), client.EXIT_USAGE)
    torn: list[int] = []
    try:
        records = log_records(spec, torn)
    except FileNotFoundError:
        option = "--log" if args.log else "--data-dir"  # the one given, as replay names it
        client.fail(f"{option}: no {EmbeddedLog.FILE} in {spec}", client.EXIT_USAGE)
    except FAILURES as e:  # a bad kafka:// URL or key file, a broker that does not answer
        client.fail(failure(e, "", spec), client.EXIT_USAGE)

    # The whole log is walked, and with a checkpoint its part up to it beside, to compare:
    # walked up to the checkpoint only, a log altered after it (its later figures edited) was
    # "intact", exit 0, and the checkpoint printed to write down was the old one again.
    # A broken link that may be a fork (a node moved to a standby ingest) is looked up in a
    # second read of the log, up to that link: the walk keeps no chain's hashes.
    def again() -> Iterator[Record]:
        return log_records(spec)

    at_checkpoint = None
    if until is None:
        report = audit(records, again=again)
    else:
        report, at_checkpoint = audit_to_checkpoint(records, until, again=again)
    checkpoint_ok = (
        None if at_checkpoint is None else (at_checkpoint.checkpoint == args.checkpoint.strip())
    )
    # Records an open cut from the end of the embedded log: the log left breaks no link.
    cuts = [] if args.log else cut_tails(spec)
    # Bytes after the last whole record, no open having cut them yet: said as an open's cut
    # of them is, without failing (a write a crash cut short is never acknowledged); before
    # 2026-12-06 nothing was said until something opened the log.
    torn_bytes = torn[0] if torn else 0
    records_cut = any(c.records for c in cuts)
    # Per partition, the records the checkpoint covered that the log no longer has: a tail
    # deleted breaks no link, so only this names it.
    missing = {
        p: o - report.ends.get(p, 0) for p, o in (until or {}).items() if report.ends.get(p, 0) < o
    }
    if args.json:
        print(
            json.dumps(
                {
                    "records": report.records,
                    "chained": report.chained,
                    "ok": report.ok,
                    "findings": [asdict(f) for f in report.findings],
                    "seq_gaps": {s: [list(g) for g in gs] for s, gs in report.gaps.items()},
                    "checkpoint": report.checkpoint,
                    "checkpoint_matches": checkpoint_ok,
                    "checkpoint_missing": {str(p): n for p, n in sorted(missing.items())},
                    "cut_from_end": [asdict(c) for c in cuts],
                    "torn_tail_bytes": torn_bytes,
                    **({"hint": KEY_SUSPECT} if report.key_suspect else {}),
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        print(
            f"walked {report.records:,} records of {spec}; {report.chained:,} in "
            f"{len(report.heads)} source chains"
        )
        if report.ok and (missing or records_cut):
            print("every link holds, but records are gone from the end (below)")
        elif report.ok:
            print("every chain is intact: nothing altered, missing, inserted or reordered")
        elif all(f.kind == "forked" for f in report.findings):
            print("every link holds but where a chain forks (below)")
        for f in report.findings:
            print(
                # What a damaged or forged record holds is anything: written out.
                f"  {f.kind.upper():9} source {shown(f.source) or '?'} at {f.partition}:"
                f"{f.offset} ({shown(f.event_id) or 'unreadable'}): {shown(f.detail)}"
            )
        if report.key_suspect:
            print(KEY_SUSPECT)
        if report.gaps:
            print("seq gaps, the seqs missing (rejected events leave them; deletions too):")
            for source, gaps in sorted(report.gaps.items()):
                seqs = ", ".join(f"{a}→{b}" for a, b in gaps[:10])
                more = f" and {len(gaps) - 10} more" if len(gaps) > 10 else ""
                print(f"  {shown(source)}: {seqs}{more}")
        for c in cuts:
            print(_cut_line(c))
        if torn_bytes:
            print(
                f"  torn tail: the log ends in {torn_bytes:,} bytes that are no whole record: a "
                "write a crash cut short, never acknowledged, or the last record cut (a "
                "checkpoint written down before names that); the next open moves them to "
                f"{EmbeddedLog.FILE}.cut-at-BYTE"
            )
        if missing:
            where = "; ".join(
                f"partition {p} at {until[p] - n}, the checkpoint at {until[p]} ({n:,} "
                f"record{'s' if n != 1 else ''} it covered {'are' if n != 1 else 'is'} gone)"
                for p, n in sorted(missing.items())
            )
            print(f"checkpoint DIFFERS: the log ends before it: {where}")
        elif checkpoint_ok is not None and at_checkpoint is not None:
            print(checkpoint_verdict(checkpoint_ok, at_checkpoint.ok))
        print(f"checkpoint (write it down; verify later with --checkpoint):\n  {report.checkpoint}")
    return 0 if report.ok and not records_cut and checkpoint_ok is not False else EXIT_TAMPERED


def _cut_line(c: CutTail) -> str:
    """One line of what an open cut from the log's end (`cut_tails`)."""
    if not c.records:
        return (
            f"  cut from the end: {c.file}, {c.bytes:,} bytes, no whole record: a write a "
            "crash cut short, never acknowledged"
        )
    ids = ", ".join(shown(i) or "unreadable" for i in c.event_ids[:10])
    more = f" and {len(c.event_ids) - 10} more" if len(c.event_ids) > 10 else ""
    return (
        f"  CUT       {c.file}: {c.records:,} whole record{'s' if c.records != 1 else ''} "
        f"({ids}{more}) an open cut from the end of the log, their checksums failing: "
        "the log's last events damaged (or, rarely, a write a crash tore before it was "
        "acknowledged); the log no longer holds them"
    )


def checkpoint_verdict(matches: bool, intact: bool) -> str:
    """What a checkpoint compared says. It digests the chains' heads only: a match beside a
    finding means the damage lies before a head, where a later link found it."""
    if not matches:
        return "checkpoint DIFFERS: the log up to it changed since it was written down"
    if intact:
        return "checkpoint matches: the log up to it is as it was"
    return (
        "checkpoint matches: every chain's head up to it is as it was then; the findings "
        "above lie before those heads"
    )


def report(args: argparse.Namespace) -> int:
    """Every metric for every county for a period, with event counts (table, CSV, JSON), and
    the as-of it was read at with the command that asks it again."""
    from duhub.audit.report import county_report

    found, metrics = county_report(args)
    rows, as_of = found.rows, found.as_of.ToJsonString()
    again = reask(args, as_of)
    if args.format == "json":
        text = json.dumps(
            # The zone its bare dates were read in: "from": "2022-12-02" alone is ambiguous.
            {
                "from": args.from_,
                "to": args.to,
                "time_zone": args.time_zone or "UTC",
                "as_of": as_of,
                "again": again,
                "rows": rows,
            },
            ensure_ascii=False,
            indent=2,
        )
    elif args.format in ("csv", "excel"):
        out = io.StringIO()
        writer = csv.writer(out)
        # The as-of a column of every row, not a comment line: a spreadsheet, or a script's
        # CSV reader, takes a line before the header for the header.
        writer.writerow(
            ["county", "name"]
            + [f"{m}{suffix}" for m in metrics for suffix in ("", "_events")]
            + ["as_of"]
        )
        for r in rows:
            writer.writerow(
                [r["county"], r["name"]]
                + [x for m in metrics for x in (r["values"][m], r["events"][m])]
                + [as_of]
            )
        # Excel and WPS read a CSV without a byte-order mark in the system's code page
        # (GBK on a Chinese Windows), UTF-8 with one.
        text = ("\ufeff" if args.format == "excel" else "") + out.getvalue()
    else:
        from duhub.cli.tables import render

        headers = ["county", "name"] + metrics
        body = [
            [r["county"], r["name"]] + [f"{r['values'][m]} ({r['events'][m]})" for m in metrics]
            for r in rows
        ]
        text = (
            f"audit report, event time [{args.from_}, {args.to})"
            + (f", time zone {args.time_zone}" if args.time_zone else "")
            + f", as of {as_of} (events recorded at or before it); each figure "
            "(events behind it)\n"
            + render(headers, body, [False, False] + [True] * len(metrics))
            + f"\nthe same figures again, however many events come since:\n  {again}"
        )
    if args.out:
        try:
            Path(args.out).write_text(
                text if text.endswith("\n") else text + "\n", encoding="utf-8"
            )
        except OSError as e:  # a directory, a missing one, no permission: not a traceback
            client.fail(f"--out: cannot write {args.out}: {e.strerror or e}", client.EXIT_USAGE)
        print(f"wrote {args.out}, as of {as_of}; the same figures again:\n  {again}")
    else:
        print(text)
        if args.format in ("csv", "excel"):  # not into the CSV a script reads
            print(f"as of {as_of}; the same figures again:\n  {again}", file=sys.stderr)
    return 0


def reask(args: argparse.Namespace, as_of: str) -> str:
    """Return the command that asks the report again at `as_of` (its figures, as here): the
    options that shape it, without --out (the file published) or credentials."""
    words = ["duhub", "audit", "report", "--from", args.from_, "--to", args.to]
    if args.area:
        words += ["--area", args.area]
    # Always: in a shell with $DUHUB_TIME_ZONE set, the bare dates would be read in its zone.
    # One word: a zone such as -05:00 given apart is read as an option.
    words.append(f"--time-zone={args.time_zone or 'UTC'}")
    words += ["--as-of", as_of]
    if args.format != "table":
        words += ["--format", args.format]
    if args.target:
        words += ["--target", args.target]
    return shlex.join(words)
