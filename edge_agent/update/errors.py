"""The update commands' refusal, apart from the code (the command handler imports it, and
must not pull in ``cryptography`` on devices that take no updates)."""

from __future__ import annotations

__all__ = ["UpdateError"]


class UpdateError(Exception):
    """An update command that cannot be done; the message is the reply's error, ``have``
    the offset of the archive the device holds (a sender resumes from there)."""

    def __init__(self, message: str, have: int | None = None) -> None:
        super().__init__(message)
        self.have = have
