"""The member listing's cursors: signed with the data home's key, long enough for any id."""

from __future__ import annotations

import threading

import pytest

from service.members import (
    MAX_CURSOR_LENGTH,
    cursor_secret,
    decode_cursor,
    encode_cursor,
)
from service.problems import ProblemError


@pytest.mark.parametrize(
    "after",
    [
        "cus_000001" + "😀" * 245,  # 255 characters of four bytes each
        "\x00" * 255,  # control characters, six characters each in JSON
        "x" * 255,
    ],
)
def test_a_cursor_after_the_longest_id_is_within_the_listings_limit_and_reads_back(after):
    """A customer id of 240 emoji made a cursor of 3,883 characters, which the listing's own
    limit of 1,000 then refused: paging stopped there (a CRM integrator's review)."""
    key = b"k" * 32
    cursor = encode_cursor(key, "12", 3, after)
    assert len(cursor) <= MAX_CURSOR_LENGTH
    assert decode_cursor(key, cursor, "12", 3) == after


def test_a_cursor_longer_than_any_given_out_is_refused_before_it_is_read():
    with pytest.raises(ProblemError) as refused:
        decode_cursor(b"k" * 32, "A" * (MAX_CURSOR_LENGTH + 1), "1", 0)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


def test_a_cursor_signed_with_another_key_is_not_one_this_listing_gave_out():
    cursor = encode_cursor(b"a" * 32, "1", 0, "cus_1")
    with pytest.raises(ProblemError) as refused:
        decode_cursor(b"b" * 32, cursor, "1", 0)
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")
    with pytest.raises(ProblemError) as stale:  # given out, for a version since replaced
        decode_cursor(b"a" * 32, cursor, "2", 0)
    assert (stale.value.status, stale.value.code) == (409, "stale_cursor")


def test_workers_starting_at_once_share_one_key_kept_across_restarts(tmp_path):
    path = tmp_path / "service" / "cursor.key"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(cursor_secret(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(keys)) == 1
    assert len(keys[0]) == 32
    assert cursor_secret(path) == keys[0]  # a restart reads the same key
    assert path.stat().st_mode & 0o077 == 0  # the owner's alone
    assert not list(path.parent.glob("*.draft"))  # no draft left behind
    # an emptied or cut-short key is replaced: signing with b"" let anyone forge cursors
    for damaged in (b"", keys[0][:5]):
        path.write_bytes(damaged)
        renewed = cursor_secret(path)
        assert len(renewed) == 32
        assert renewed != keys[0]
        assert cursor_secret(path) == renewed


def test_a_key_already_there_is_read_without_the_lock(tmp_path, monkeypatch):
    """Taking the lock to read made every listing a 500 on a read-only data home, where the lock
    file cannot be created (a review): an existing key is read as it is."""
    import service.members

    path = tmp_path / "service" / "cursor.key"
    made = cursor_secret(path)

    def no_lock(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(service.members, "FileLock", no_lock)
    assert cursor_secret(path) == made
