"""Running the app under uvicorn: what ``segments serve`` does."""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Literal

import uvicorn
from pythonjsonlogger.core import RESERVED_ATTRS
from uvicorn.config import LOGGING_CONFIG

from feature_store.errors import SegmentsError

if TYPE_CHECKING:
    from pydantic import ValidationError

FACTORY = "service.app:app_from_environment"
# By import path: each worker process imports it (``service.protocol``).
PROTOCOL = "service.protocol:HeaderDeadlineProtocol"


def check_settings() -> None:
    """Read the settings and the keys once; ``SegmentsError`` says what is wrong."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from service.keys import ApiKeys
    from service.settings import Settings

    try:
        settings = Settings()
        keys = ApiKeys.from_settings(settings)
    except ValidationError as error:
        raise SegmentsError(f"invalid service settings: {settings_problem(error)}") from None
    except (SettingsError, ValueError) as error:
        raise SegmentsError(f"invalid service settings: {error}") from None
    if not len(keys):
        raise SegmentsError(
            "no API keys: set SEGMENTS_API_KEYS (see docs/service.md) or create a local key "
            "with `python -m service.keys`"
        )


def settings_problem(error: ValidationError) -> str:
    """The first problem of a settings error, in one line naming its environment variable:
    pydantic's own text took four lines and named the field, not the variable."""
    first = error.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"SEGMENTS_{field.upper()}: {message}{more}" if field else f"{message}{more}"


# Each line says when and which worker process: with --workers 2 every message of the model's
# lifecycle came twice with nothing to tell them apart, and no line said when (an operator's
# review). ISO 8601 with the offset from UTC.
LOG_PREFIX = "%(asctime)s [%(process)d] %(levelprefix)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


LogFormat = Literal["text", "json"]
# One JSON object per line (``--log-format json``), for a log collector (Loki, CloudWatch, an ELK
# stack) to index by field rather than parse the text: the fields of ``LOG_PREFIX`` and the
# message, named as such collectors name them.
JSON_LOG_FIELDS = "%(asctime)s %(process)d %(levelname)s %(name)s %(message)s"
JSON_LOG_NAMES = {"asctime": "time", "process": "pid", "levelname": "level", "name": "logger"}


def log_config(log_format: LogFormat = "text") -> dict[str, Any]:
    """uvicorn's logging, plus the service's own logger (model loads, swaps and refusals); every
    line starts with its time and process id (``LOG_PREFIX``), or is one JSON object with them
    (``log_format`` "json", ``python-json-logger``: the logs were text alone, an operator's
    note)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    for formatter in ("default", "access"):
        if log_format == "json":
            config["formatters"][formatter] = {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": JSON_LOG_FIELDS,
                "datefmt": LOG_DATE_FORMAT,
                "rename_fields": JSON_LOG_NAMES,
                # uvicorn's copy of the message with terminal colour codes: noise in a collector
                "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
            }
            continue
        config["formatters"][formatter]["fmt"] = config["formatters"][formatter]["fmt"].replace(
            "%(levelprefix)s", LOG_PREFIX, 1
        )
        config["formatters"][formatter]["datefmt"] = LOG_DATE_FORMAT
    config["loggers"]["service"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


# A request scores one row: a math library's thread pool only adds hand-offs, and on a busy
# machine its threads wait for cores (a nearest-neighbour query took 3.5 ms instead of 1 ms).
# Each worker is single-threaded for math; scale with --workers.
SINGLE_THREADED_MATH = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run(
    host: str,
    port: int,
    workers: int,
    access_log: bool = False,
    log_format: LogFormat = "text",
) -> None:
    """Serve until interrupted. With several workers, metrics are added up across them.

    The HTTP parser is h11, whose ``h11_max_incomplete_event_size`` bounds the request line and
    headers it buffers (``SEGMENTS_MAX_HEADER_BYTES``): httptools has no such bound, and read a
    50 MB header before the API key was looked at. Headers must also arrive within a deadline
    (``service.protocol``).
    """
    from models.registry import client_environment
    from service.settings import Settings

    max_header_bytes = Settings().max_header_bytes
    for name in SINGLE_THREADED_MATH:  # before the workers import numpy and scikit-learn
        os.environ.setdefault(name, "1")
    # One slow or dead registry server must not hold a worker's poller for minutes of retries.
    for name, value in client_environment(Settings().registry_timeout_seconds).items():
        os.environ.setdefault(name, value)
    # A served app starts its ingestion process at once (an app in a test starts it on demand).
    os.environ.setdefault("SEGMENTS_INGEST_PROCESS_AT_START", "1")
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="segments-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=log_config(log_format),
            access_log=access_log,
            server_header=False,
            http=PROTOCOL,  # h11, with a deadline on request headers
            h11_max_incomplete_event_size=max_header_bytes,
            # Longer than a client's idle pool (httpx keeps 5 s): the server closing an idle
            # connection just as the client reuses it is a failed request the client never caused.
            timeout_keep_alive=75,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
