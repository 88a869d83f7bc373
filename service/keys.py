"""API keys: which key may do what. Only salted hashes of keys are kept, in memory and on disk.

A key is known by ``HMAC-SHA256(salt, key)``; looking one up compares digests in constant time.
The keys of ``SEGMENTS_API_KEYS`` are hashed when the app is built (with a salt made for the
process). ``python -m service.keys`` creates a local key with every scope the first time it runs,
prints it that once, and keeps only its hash in ``SEGMENTS_HOME/api_keys.json`` (mode 0600, with the
file's own salt); ``make run`` uses it before serving. A key file of the old plain-text format is
still read, and ``python -m service.keys`` rewrites it in the hashed format.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import shlex
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from service.settings import Scope, Settings

KEY_FILE_FORMAT = "hmac-sha256-v1"


def key_digest(salt: bytes, key: str) -> str:
    return hmac.new(salt, key.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


class ApiKeys:
    """The configured keys (as digests) and their scopes; never compares plain text.

    ``configuration`` fingerprints the keys and their scopes, the same in every process that
    reads the same configuration and different once a key is added, removed or given other
    scopes: browser sessions are bound to it (``service.ui.sessions``), so a changed key
    configuration signs everyone out of the pages when the service restarts with it."""

    def __init__(
        self,
        salt: bytes,
        digests: Mapping[str, Sequence[Scope | str]],
        configuration: str | None = None,
    ) -> None:
        self._salt = salt
        self._entries = [
            (digest.encode(), frozenset(Scope(s) for s in scopes))
            for digest, scopes in digests.items()
        ]
        self.configuration = configuration or _fingerprint(
            salt.hex(),
            {digest: sorted({Scope(s).value for s in ss}) for digest, ss in digests.items()},
        )

    @classmethod
    def of(cls, keys: Mapping[str, Sequence[Scope | str]]) -> ApiKeys:
        """Plain keys -> their digests under a salt made for this object. The salt differs from
        process to process, so the fingerprint is taken of the keys themselves, slowly (a key
        given in the environment may be short)."""
        salt = secrets.token_bytes(16)
        plain = {key: sorted({Scope(s).value for s in scopes}) for key, scopes in keys.items()}
        stretched = hashlib.pbkdf2_hmac(
            "sha256",
            json.dumps(plain, sort_keys=True).encode("utf-8", "surrogatepass"),
            b"customer-segments/api-keys",
            50_000,
        ).hex()
        return cls(salt, {key_digest(salt, key): scopes for key, scopes in keys.items()}, stretched)

    def __len__(self) -> int:
        return len(self._entries)

    def scopes_of(self, key: str) -> frozenset[Scope] | None:
        """The key's scopes, or ``None`` for an unknown key; every entry is compared."""
        digest = key_digest(self._salt, key).encode()
        found = None
        for known, scopes in self._entries:
            if hmac.compare_digest(digest, known):
                found = scopes
        return found

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """``SEGMENTS_API_KEYS`` when set, else the local key file when it exists, else none."""
        if settings.api_keys is not None:
            return cls.of(settings.api_keys)
        path = settings.api_keys_file
        if path.is_file():
            return read_key_file(path)
        return cls.of({})


def _fingerprint(salt: str, digests: Mapping[str, list[str]]) -> str:
    document = json.dumps({"salt": salt, "keys": digests}, sort_keys=True)
    return hashlib.sha256(document.encode()).hexdigest()


def _load_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _scopes(path: Path, entries: object) -> dict[str, list[Scope]]:
    try:
        return {str(k): [Scope(s) for s in scopes] for k, scopes in entries.items()}  # type: ignore[attr-defined]
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"{path}: expected key -> list of scopes ({error})") from None


def _is_hashed(data: Mapping[str, object]) -> bool:
    return data.get("format") == KEY_FILE_FORMAT


def read_key_file(path: Path) -> ApiKeys:
    """The keys of ``path``: hashed entries as they are, plain ones (the old format) hashed now."""
    data = _load_json(path)
    if not _is_hashed(data):
        return ApiKeys.of(_scopes(path, data))
    try:
        salt = bytes.fromhex(str(data["salt"]))
    except (KeyError, ValueError):
        raise ValueError(f"{path}: expected a hex 'salt'") from None
    return ApiKeys(salt, _scopes(path, data.get("keys", {})))


def write_key_file(path: Path, keys: Mapping[str, Sequence[Scope]]) -> None:
    """Write the hashes of ``keys`` with a new salt; the file is readable by its owner only."""
    salt = secrets.token_bytes(16)
    entries = {
        key_digest(salt, key): [Scope(s).value for s in scopes] for key, scopes in keys.items()
    }
    document = {"format": KEY_FILE_FORMAT, "salt": salt.hex(), "keys": entries}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, indent=2)
    os.replace(temporary, path)


def ensure_local_key(path: Path) -> tuple[str | None, bool]:
    """``(key, True)`` when a new all-scopes key was made (the only time it can be shown);
    ``(None, False)`` when ``path`` holds hashed keys already. A plain-text file of the old format
    is rewritten hashed, and its first key returned one last time as ``(key, False)``."""
    if path.is_file():
        data = _load_json(path)
        if _is_hashed(data):
            return None, False
        plain = _scopes(path, data)
        write_key_file(path, plain)
        return next(iter(plain), None), False
    key = "sk_local_" + secrets.token_urlsafe(24)
    write_key_file(path, {key: list(Scope)})
    return key, True


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create (once) and print the local API key.")
    parser.add_argument(
        "--port", type=int, help="Also print a request to the service on this port."
    )
    args = parser.parse_args(argv)
    settings = Settings()
    path = settings.api_keys_file
    key, created = ensure_local_key(path)
    if key is None:
        print(
            f"An API key exists already (only its hash is kept, in {path}); it was printed when it "
            f"was made. Delete {path} and run this again for a new one."
        )
    else:
        state = "generated" if created else "existing, now kept as a hash"
        print(f"API key ({state}, all scopes; only its hash is kept, in {path}): {key}")
        print("Keep it now: it cannot be shown again.")
    if settings.api_keys is not None:
        print(
            "note: SEGMENTS_API_KEYS is set, so the service uses those keys instead",
            file=sys.stderr,
        )
    if args.port:
        # a key shown once before is not known here: the example reads it from a variable the
        # user sets, in double quotes so that the shell expands it (single quotes sent the text
        # "$SEGMENTS_API_KEY": a new user's 401)
        header = shlex.quote(f"X-API-Key: {key}") if key else '"X-API-Key: $SEGMENTS_API_KEY"'
        url = f"http://127.0.0.1:{args.port}"
        # The server loads the model after it starts listening; until it logs the version it
        # serves, a request gets 503 model_unavailable.
        print(
            f"Scoring API on {url} (documentation: {url}/docs), ready once the server logs "
            "the model version it serves. For example:"
        )
        # a customer of this data home: the demo's cus_000002 was a 404 on a user's own data
        example = _example_customer(settings) or "CUSTOMER_ID"
        body = json.dumps({"customer_id": example})
        if not key:
            print("  export SEGMENTS_API_KEY=...  # the key printed when it was made")
        print(
            f"  curl -s -H {header} -H 'Content-Type: application/json' "
            f"-d {shlex.quote(body)} {url}/v1/score"
        )


def _example_customer(settings: Settings) -> str | None:
    """A customer the online store holds (the smallest id), or None when it holds none yet."""
    if not settings.online_store_path.exists():
        return None
    # here, not at the top: the store brings pandas, and `python -m service.keys` runs at every
    # `make run`
    from feature_store.online_store import SqliteOnlineStore

    try:
        return SqliteOnlineStore(settings.online_store_path).first_customer_id()
    except sqlite3.Error:
        return None


if __name__ == "__main__":
    main()
