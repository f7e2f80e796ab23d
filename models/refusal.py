"""The one base of everything the domain refuses: a kind (what the refusal means to a caller) and
the field to fix, if one. Adapters render it once each: JSON for the API (api/errors.py), a
GeoReport error list for Open311 (api/open311/endpoints.py)."""

from enum import StrEnum


class Kind(StrEnum):
    invalid = "invalid"  # the input cannot be taken as it is: fix `field`
    forbidden = "forbidden"  # this caller may not do this
    not_found = "not_found"
    conflict = "conflict"  # the state changed or does not allow it: reload and decide again
    too_large = "too_large"  # over a limit the message names
    unsupported = "unsupported"  # a kind of content we do not take (a file that is no photo or PDF)


class Refused(Exception):
    """A refusal; subclasses set `kind`, and `where` the part of a request `field` is in."""

    kind: Kind = Kind.invalid
    field: str | None = None
    where = "body"
    type = "value_error"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field

    def facts(self) -> dict:
        """What a caller needs beside the message (a conflict's current status and version)."""
        return {}
