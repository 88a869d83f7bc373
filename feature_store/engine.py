"""DuckDB connections configured the one way this project needs: UTC, bounded threads."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import duckdb

# DuckDB's own default is 80% of the machine's memory, for each connection. A batch job reading a
# user's file (ingestion, an export's mapping, the service's writes) spills to its data home
# beyond this instead: a 400 MB CSV held 2.7 GB, and a file ten times larger would have taken
# the machine. Half the memory, at most 4 GiB: a limit of 2 GiB cost that file 4% more time,
# 1 GiB 20% (`docs/ingestion.md`, "Memory").
MAX_SPILLING_MEMORY = 4 * 1024**3
# Below this DuckDB cannot hold one block of a CSV reader ("could not allocate block of size 18.7
# MiB" at 16 MB); a limit that fails every file is refused when it is given.
MIN_MEMORY_LIMIT = 64 * 1024**2
# Each of a spilling connection's threads pins buffers of its own: at 64 MiB a 300,000-row CSV
# read on 2 threads and failed on 4, and a 2,000,000-row one read on 1 and failed on 2 ("failed
# to pin block", two reviews); 128 MiB read both on 4. A spilling connection gets at most one
# thread per this much of its limit.
MEMORY_PER_THREAD = 64 * 1024**2
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)
_UNIT_BYTES = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}


def memory_limit_bytes(text: str) -> int:
    """The bytes a memory limit such as ``2GB`` or ``512MiB`` names (DuckDB's units: KB, MB, GB
    are powers of 1000, KiB, MiB, GiB powers of 1024); ``ValueError`` with the reason otherwise."""
    found = _SIZE.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a size: write a number and a unit, e.g. 2GB or 512MiB")
    size = int(float(found.group(1)) * _UNIT_BYTES[found.group(2).upper()])
    if size < MIN_MEMORY_LIMIT:
        raise ValueError(f"{text!r} is below 64MiB, too little to read a file")
    return size


def default_spilling_memory() -> int:
    """Half the memory this process may use, at most ``MAX_SPILLING_MEMORY``."""
    available = usable_memory()
    if available is None:
        return MAX_SPILLING_MEMORY
    return max(MIN_MEMORY_LIMIT, min(MAX_SPILLING_MEMORY, available // 2))


# Where a container's memory cap is read (cgroup v2, then v1): in a 2 GiB container on a large
# host, the host's memory would size the limit past the cap and the process would be killed.
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_MEMORY_FILES = (
    CGROUP_ROOT / "memory.max",
    CGROUP_ROOT / "memory" / "memory.limit_in_bytes",
)
# Which group this process is in; a cap may be set on that group or any group above it.
PROC_CGROUP = Path("/proc/self/cgroup")


def cgroup_memory_files(membership: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """The files that may cap this process's memory, from its group (``membership``, the text of
    ``/proc/self/cgroup``) up to the hierarchy's root.

    The root's files alone miss a cap set on a nested group: a systemd unit's ``MemoryMax``
    (``/system.slice/segments.service``), or a job scheduler's group, where the root has no cap.
    cgroup v2 names the group on the line ``0::PATH``; v1 on the line whose controllers include
    ``memory``."""
    files: list[Path] = []
    for line in membership.splitlines():
        number, controllers, group = [*line.split(":", 2), "", ""][:3]
        if number == "0" and controllers == "":
            base, name = root, "memory.max"
        elif "memory" in controllers.split(","):
            base, name = root / "memory", "memory.limit_in_bytes"
        else:
            continue
        parts = [part for part in group.strip().split("/") if part and part != ".."]
        files += [base.joinpath(*parts[:depth], name) for depth in range(len(parts), 0, -1)]
    return files


def usable_memory() -> int | None:
    """The machine's memory, or the lowest cap of this process's cgroups when lower; None when
    unknown."""
    try:
        found = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    except (ValueError, OSError, AttributeError):  # a platform without these names
        found = []
    try:
        nested = cgroup_memory_files(PROC_CGROUP.read_text(), CGROUP_ROOT)
    except OSError:  # not Linux, or no /proc
        nested = []
    for path in [*nested, *CGROUP_MEMORY_FILES]:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no cap
            found.append(int(text))
    return min(found) if found else None


def connect(
    database: str = ":memory:",
    *,
    threads: int | None = None,
    spill_to: Path | None = None,
    memory_limit: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open a DuckDB connection whose session time zone is UTC.

    UTC matters: naive timestamps in the contract mean UTC, and ``occurred_at::DATE`` must be the
    UTC calendar day. ``spill_to`` is where DuckDB writes what does not fit its memory limit; by
    default an in-memory database spills to ``.tmp`` in the working directory, wherever the
    command was run. A connection given ``spill_to`` holds at most ``memory_limit`` bytes (default
    ``default_spilling_memory()``), spills the rest there, and runs on at most one thread per
    ``MEMORY_PER_THREAD`` of it.
    """
    con = duckdb.connect(database)
    threads = threads or os.cpu_count() or 1
    if spill_to is not None:
        con.execute(f"SET temp_directory = {sql_string(str(spill_to))}")
        limit = memory_limit if memory_limit is not None else default_spilling_memory()
        con.execute(f"SET memory_limit = '{int(limit)}B'")
        threads = max(1, min(threads, int(limit) // MEMORY_PER_THREAD))
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {threads}")
    # Progress bars are ours (rich) at the CLI edge; DuckDB's would interleave with them.
    con.execute("SET enable_progress_bar = false")
    return con


def sql_string(value: str) -> str:
    """Quote a value as a SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """Quote a name as a SQL identifier (a file's column may hold any character)."""
    return '"' + name.replace('"', '""') + '"'


class SessionFactory:
    """Isolated DuckDB sessions over one open in-memory database, for a request path.

    Opening a DuckDB database costs about 25 ms; a cursor on an open one about 0.3 ms, inherits its
    settings, and sees only its own temporary views and registered frames, so every request gets a
    session of its own without paying for a database.
    """

    def __init__(self, threads: int = 1) -> None:
        self._database = connect(threads=threads)
        self._lock = threading.Lock()

    def session(self) -> duckdb.DuckDBPyConnection:
        with self._lock:  # cursors are taken from the shared connection one at a time
            return self._database.cursor()

    def close(self) -> None:
        self._database.close()
