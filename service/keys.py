"""API keys: which key may do what. Keys are kept only as sha256 digests once loaded.

``python -m service.keys`` creates a local key with every scope in ``SEGMENTS_HOME/api_keys.json``
(mode 0600) the first time it runs and prints it; ``make run`` uses it before serving.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from service.settings import Scope, Settings


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class ApiKeys:
    """The configured keys and their scopes; looking a key up never compares plain text."""

    def __init__(self, keys: Mapping[str, Sequence[Scope | str]]) -> None:
        self._scopes = {
            _digest(key): frozenset(Scope(s) for s in scopes) for key, scopes in keys.items()
        }

    def __len__(self) -> int:
        return len(self._scopes)

    def scopes_of(self, key: str) -> frozenset[Scope] | None:
        """The key's scopes, or ``None`` for an unknown key."""
        return self._scopes.get(_digest(key))

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """``SEGMENTS_API_KEYS`` when set, else the local key file when it exists, else none."""
        if settings.api_keys is not None:
            return cls(settings.api_keys)
        path = settings.api_keys_file
        if path.is_file():
            return cls(read_key_file(path))
        return cls({})


def read_key_file(path: Path) -> dict[str, list[Scope]]:
    try:
        data = json.loads(path.read_text())
        return {str(key): [Scope(s) for s in scopes] for key, scopes in data.items()}
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"{path}: expected a JSON object of key -> scopes ({error})") from None


def ensure_local_key(path: Path) -> tuple[str, bool]:
    """The first key of ``path``, creating the file with one all-scopes key when it is missing."""
    if path.is_file():
        return next(iter(read_key_file(path))), False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "sk_local_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({key: [scope.value for scope in Scope]}, handle, indent=2)
    return key, True


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Create (once) and print the local API key.")
    parser.add_argument(
        "--port", type=int, help="Also print a request to the service on this port."
    )
    args = parser.parse_args(argv)
    settings = Settings()
    key, created = ensure_local_key(settings.api_keys_file)
    state = "generated" if created else "existing"
    print(f"API key ({state}, all scopes, kept in {settings.api_keys_file}): {key}")
    if settings.api_keys is not None:
        print(
            "note: SEGMENTS_API_KEYS is set, so the service uses those keys instead",
            file=sys.stderr,
        )
    if args.port:
        url = f"http://127.0.0.1:{args.port}"
        print(f"Scoring API on {url} (documentation: {url}/docs). For example:")
        print(
            f"  curl -s -H 'X-API-Key: {key}' -H 'Content-Type: application/json' "
            f'-d \'{{"customer_id": "cus_000002"}}\' {url}/v1/score'
        )


if __name__ == "__main__":
    main()
