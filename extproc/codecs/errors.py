"""The one error the codecs raise: the payload cannot be read or translated (a client's 400)."""

from __future__ import annotations


class CodecError(ValueError):
    """A message that is not valid in its protocol, or that has no equivalent in the other one."""
