"""Logging of the services: text for people, or `--log-format json` for log collectors
(one JSON object per line: time, level, logger, message, plus the record's extra fields)."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime

from duhub.logrepeats import RepeatFilter

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Attributes every LogRecord has: anything else was passed with extra={…} and is a field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


# The libraries under the aggregate worker and the Kafka log: at INFO they wrote ~100 lines at
# every start and stop of a worker (each Faust service "Starting...", each broker connection),
# where duhub's own lines say what an operator needs (partitions gained and given up, offsets).
LIBRARIES = ("faust", "mode", "aiokafka", "kafka")
LIBRARY_LEVEL_VARIABLE = "DUHUB_LIBRARY_LOG_LEVEL"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def library_level(environ: Mapping[str, str] = os.environ) -> int:
    """The level of the libraries' loggers: $DUHUB_LIBRARY_LOG_LEVEL (DEBUG, INFO, WARNING or
    ERROR, any case), WARNING when unset or empty; ValueError naming the variable otherwise."""
    text = environ.get(LIBRARY_LEVEL_VARIABLE, "").strip()
    if not text:
        return logging.WARNING
    if text.upper() not in _LEVELS:
        raise ValueError(
            f"${LIBRARY_LEVEL_VARIABLE}: {text!r} is not a log level: give one of "
            f"{', '.join(_LEVELS)}"
        )
    return logging.getLevelName(text.upper())  # type: ignore[no-any-return]


def set_library_level(level: int) -> None:
    for name in LIBRARIES:
        logging.getLogger(name).setLevel(level)


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send the root logger's records to stderr in `fmt` (text or json), replacing handlers;
    the libraries' at WARNING and above (`set_library_level` to change it)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RepeatFilter(LIBRARIES))  # a library's line repeated is held back
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    set_library_level(max(level, logging.WARNING))
    logging.captureWarnings(True)
    if fmt == "json":
        # What Python prints itself when a thread or the process ends with an exception
        # goes out as a record too: one JSON object per line, never a raw traceback.
        sys.excepthook = _uncaught
        threading.excepthook = _uncaught_in_thread


def json_logging() -> bool:
    """Return whether setup_logging set up json."""
    return any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def fatal(message: str, code: int) -> int:
    """Say why a server does not start and return its exit code: under json logging a
    `critical` record (with `exit_code`), which a collector reading JSON lines can parse; else
    the line for people, as it was."""
    if json_logging():
        _FATAL.critical(message, extra={"exit_code": code})
    else:
        print(message, file=sys.stderr, flush=True)
    return code


_FATAL = logging.getLogger("duhub")
_UNCAUGHT = logging.getLogger("duhub.uncaught")


def _uncaught(kind: type[BaseException], value: BaseException, tb: object) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)  # type: ignore[arg-type]
        return
    _UNCAUGHT.critical("uncaught exception", exc_info=(kind, value, tb))  # type: ignore[arg-type]


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    _UNCAUGHT.critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra={"thread_name": name},
    )
