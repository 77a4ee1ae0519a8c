"""The one error a reader raises: the file as a whole cannot be read as configured."""

from __future__ import annotations


class SourceError(ValueError):
    """A whole source is unusable (wrong encoding, missing mapped column, unknown format).

    A single bad record never raises: it becomes a Reject. This is for problems that would make
    every record of the file wrong, where going on would only hide the mistake.
    """
