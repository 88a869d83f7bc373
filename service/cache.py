"""A verified local copy of the last good model, so the service starts when the registry is down.

Layout under ``SEGMENTS_HOME/service/model-cache``::

    v<version>/<model files>   copied after the registry's sha256 check passed
    v<version>/record.json     version, alias, and the sha256 the registry recorded
    current.json               which version is the last good one

Every write lands in a temporary name first and is renamed into place, so several workers (or a
crash) never leave a half-written copy behind; loading checks the files against the recorded
sha256 again before anything is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipelines.artifacts import verify

RECORD_FILE = "record.json"
POINTER_FILE = "current.json"


@dataclass(frozen=True)
class CachedModel:
    version: str
    folder: Path
    hashes: dict[str, str]


class LocalModelCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _folder(self, version: str) -> Path:
        return self.root / f"v{version}"

    def store(self, version: str, folder: Path, hashes: dict[str, str]) -> None:
        """Copy the (verified) files of ``version`` and make it the last good one."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self._folder(version)
        if not (target / RECORD_FILE).is_file():
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
            for name in hashes:
                shutil.copy2(folder / name, staging / name)
            verify(staging, hashes)
            record = {"version": version, "hashes": hashes}
            (staging / RECORD_FILE).write_text(json.dumps(record, indent=2))
            try:
                staging.rename(target)
            except OSError:  # another worker stored the same version first
                shutil.rmtree(staging, ignore_errors=True)
        self._write_pointer(version)
        self._prune(keep=version)

    def _write_pointer(self, version: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".pointer-", dir=self.root)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": version}, handle)
        os.replace(tmp, self.root / POINTER_FILE)

    def _prune(self, keep: str) -> None:
        for path in self.root.glob("v*"):
            if path.is_dir() and path.name != f"v{keep}":
                shutil.rmtree(path, ignore_errors=True)

    def last_good(self) -> CachedModel | None:
        """The last good version, its files verified again; ``None`` when there is none."""
        try:
            version = json.loads((self.root / POINTER_FILE).read_text())["version"]
            folder = self._folder(str(version))
            record = json.loads((folder / RECORD_FILE).read_text())
        except (OSError, ValueError, KeyError, TypeError):
            return None
        hashes = {str(k): str(v) for k, v in record["hashes"].items()}
        verify(folder, hashes)
        return CachedModel(str(version), folder, hashes)
