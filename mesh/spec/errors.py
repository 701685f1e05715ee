"""Field-path errors: the one error type `mesh.spec` raises.

A SeldonDeployment is rejected whole, naming every offending field the way a kubectl user sees it
(`spec.predictors[1].traffic`, `metadata.annotations["seldon.io/rest-timeout"]`), so the user can fix
everything in one edit. Parsing (pydantic type errors), validation (the admission-webhook rules) and
loading (which file, which document) all produce `FieldError`s; callers raise one `SpecError` at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class FieldError:
    """One problem at one field. `path` is empty for the document as a whole; `source` names the
    file and document (`iris.yaml#2`) when the error came from `parse_documents` or `load_path`."""

    path: str
    message: str
    source: str = ""

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.path) if part)
        return f"{where}: {self.message}" if where else self.message

    def with_source(self, source: str) -> FieldError:
        return replace(self, source=source)

    def under(self, prefix: str) -> FieldError:
        """The same error seen from an enclosing object, e.g. `items[2]` of a List."""
        return replace(self, path=join_path(prefix, self.path))


class SpecError(ValueError):
    """A SeldonDeployment (or a file of them) is invalid; `errors` names every problem."""

    def __init__(self, errors: Iterable[FieldError]) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__(self._render())

    def _render(self) -> str:
        count = len(self.errors)
        noun = "problem" if count == 1 else "problems"
        lines = [f"invalid SeldonDeployment ({count} {noun}):"]
        lines += [f"  - {error}" for error in self.errors]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._render()


def join_path(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def key(name: str) -> str:
    """A map key as a path segment: `.labels` for identifiers, `["seldon.io/svc-name"]` otherwise."""
    return f".{name}" if _IDENTIFIER.match(name) else f'["{name}"]'


def map_key(name: str) -> str:
    """A key of a string map (labels, annotations) as a path segment: always `["..."]`."""
    return f'["{name}"]'


# Fields holding string maps: a location part after one of these is a map key, not a field.
_MAP_FIELDS = frozenset({"annotations", "labels"})


def format_location(loc: Sequence[int | str]) -> str:
    """A pydantic error location, e.g. `('spec', 'predictors', 1, 'traffic')`, as a field path."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif previous in _MAP_FIELDS:
            out += map_key(part)
        else:
            segment = key(part)
            out += segment[1:] if not out and segment.startswith(".") else segment
        previous = part
    return out


def related(a: str, b: str) -> bool:
    """True when one path is the other or lies inside it (`spec.predictors` and `spec.predictors[0].name`)."""
    return _inside(a, b) or _inside(b, a)


def _inside(inner: str, outer: str) -> bool:
    if inner == outer or not outer:
        return True
    return inner.startswith(outer) and inner[len(outer)] in ".["
