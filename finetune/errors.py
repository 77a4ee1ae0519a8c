"""Errors a stage raises about its inputs, importable by every stage without loading another stage's libraries."""

from __future__ import annotations


class StageInputError(RuntimeError):
    """A stage was asked to run before the stage it reads from wrote its outputs, or those outputs are unusable."""


__all__ = ["StageInputError"]
