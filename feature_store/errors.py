"""Errors a user can act on. The CLI prints their message and exits non-zero; no traceback."""


class SegmentsError(Exception):
    """Base class for every error caused by input or configuration rather than by a bug."""


class InputFileError(SegmentsError):
    """An input file is missing, unreadable, of an unsupported format or lacks required columns."""


class InvalidAsOfError(SegmentsError):
    """An as-of value is neither an ISO date nor an ISO instant."""


class EmptyStoreError(SegmentsError):
    """An operation needs ingested events and the offline store has none."""


class StoreBusyError(SegmentsError):
    """The data home is held by another process: its catalog by one outside the store's lock
    (refused at once), or the lock itself for longer than a reading command waits."""
