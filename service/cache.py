"""A verified local copy of the last good model, so the service starts when the registry is down.

Layout under ``SEGMENTS_HOME/service``::

    model-cache/v<version>/<model files>   copied after the registry's sha256 check passed
    model-cache/v<version>/record.json     version, the registry's sha256, and an HMAC of both
    model-cache/current.json               which version is the last good one
    model-cache.key                        the HMAC key (0600), made on first use

What the files must hash to never comes from beside them alone: when the registry can be asked,
its recorded sha256 decide; when it cannot, the record counts only if its HMAC, made with a key
kept outside the cache folder, matches. So files of another version swapped in under a rewritten
record are refused, not served under the old version's name.

Every write lands in a temporary name first and is renamed into place, so several workers (or a
crash) never leave a half-written copy behind. A copy that no longer matches is replaced the next
time the version is stored (after each load from the registry).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from models.registry import ModelIntegrityError, verify

RECORD_FILE = "record.json"
POINTER_FILE = "current.json"
# Held while the pointer is written and the other versions pruned (``LocalModelCache.store``).
LOCK_FILE = ".lock"

# The registry's sha256 for a version's files, or None when it cannot say.
TrustedHashes = Callable[[str], Mapping[str, str] | None]


@dataclass(frozen=True)
class CachedModel:
    version: str
    folder: Path
    hashes: dict[str, str]


class LocalModelCache:
    def __init__(self, root: Path, key_file: Path) -> None:
        self.root, self.key_file = root, key_file

    def _folder(self, version: str) -> Path:
        return self.root / f"v{version}"

    def store(self, version: str, folder: Path, hashes: dict[str, str]) -> None:
        """Keep a copy of ``version``'s files (checked against the registry's ``hashes``) and make
        it the last good one; a copy already there is kept only while it still matches."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self._folder(version)
        # One worker at a time: two storing versions 2 and 3 at once could each write its pointer
        # and then prune the other's copy, leaving a pointer to a folder neither kept, and no
        # cache to start from when the registry is down.
        with FileLock(str(self.root / LOCK_FILE)):
            if not self._intact(target, version, hashes):
                self._replace(target, self._staged(version, folder, hashes))
            self._write_pointer(version)
            self._prune(keep=version)

    def _intact(self, target: Path, version: str, hashes: dict[str, str]) -> bool:
        try:
            if self._signed_record(target) != (version, hashes):
                return False
            verify(target, hashes)
        except (OSError, ValueError, KeyError, TypeError, ModelIntegrityError):
            return False
        return True

    def _staged(self, version: str, folder: Path, hashes: dict[str, str]) -> Path:
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            for name in hashes:
                shutil.copy2(folder / name, staging / name)
            verify(staging, hashes)
            record = {"version": version, "hashes": hashes, "hmac": self._sign(version, hashes)}
            (staging / RECORD_FILE).write_text(json.dumps(record, indent=2))
        except BaseException:
            # a copy cut short (a full disk) is removed, not left beside the cache at every
            # poll (an operator's review found `.staging-*` folders after a full disk)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return staging

    def _replace(self, target: Path, staging: Path) -> None:
        """Put ``staging`` in place of ``target``: a folder cannot be renamed onto a non-empty one,
        so a damaged copy is first moved aside (a reader meanwhile finds none, never half)."""
        aside = self.root / f".replaced-{uuid.uuid4().hex}"
        with contextlib.suppress(FileNotFoundError):
            target.rename(aside)
        try:
            staging.rename(target)
        except OSError:  # another worker put a whole copy in place meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(aside, ignore_errors=True)

    def _write_pointer(self, version: str) -> None:
        fd, tmp = tempfile.mkstemp(prefix=".pointer-", dir=self.root)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": version}, handle)
        os.replace(tmp, self.root / POINTER_FILE)

    def _prune(self, keep: str) -> None:
        for path in self.root.glob("v*"):
            if path.is_dir() and path.name != f"v{keep}":
                shutil.rmtree(path, ignore_errors=True)

    def last_good(self, trusted_hashes: TrustedHashes | None = None) -> CachedModel | None:
        """The last good version with its files verified; ``None`` when there is none.

        ``trusted_hashes`` asks the registry what the files must hash to; when it is not given or
        cannot say, the record's hashes count only if its HMAC matches.
        """
        try:
            version = str(json.loads((self.root / POINTER_FILE).read_text())["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        folder = self._folder(version)
        registry = trusted_hashes(version) if trusted_hashes is not None else None
        hashes = dict(registry) if registry else self._recorded_hashes(folder, version)
        verify(folder, hashes)
        return CachedModel(version, folder, hashes)

    def _recorded_hashes(self, folder: Path, version: str) -> dict[str, str]:
        try:
            recorded_version, hashes = self._signed_record(folder)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelIntegrityError(f"local copy {folder}: unreadable record: {error}") from None
        if recorded_version != version:
            raise ModelIntegrityError(
                f"local copy {folder} records version {recorded_version}, not {version}"
            )
        return hashes

    def _signed_record(self, folder: Path) -> tuple[str, dict[str, str]]:
        """The record's version and hashes; ``ModelIntegrityError`` unless its HMAC matches."""
        record = json.loads((folder / RECORD_FILE).read_text())
        version = str(record["version"])
        hashes = {str(k): str(v) for k, v in record["hashes"].items()}
        if not hmac.compare_digest(str(record.get("hmac", "")), self._sign(version, hashes)):
            raise ModelIntegrityError(
                f"local copy {folder}: record.json is not signed with this home's key "
                "(its sha256 list was not written by this service); refusing it"
            )
        return version, hashes

    def _sign(self, version: str, hashes: Mapping[str, str]) -> str:
        message = json.dumps({"version": version, "hashes": dict(hashes)}, sort_keys=True)
        return hmac.new(self._key(), message.encode(), hashlib.sha256).hexdigest()

    def _key(self) -> bytes:
        with contextlib.suppress(FileNotFoundError):
            return bytes.fromhex(self.key_file.read_text())
        return _create_key(self.key_file)


def _create_key(path: Path) -> bytes:
    """Make the key file (0600) unless another worker just did; either way, return its key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=path.parent)  # mkstemp makes it 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        # A hard link appears whole or not at all, and never replaces a key already there.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
    return bytes.fromhex(path.read_text())
