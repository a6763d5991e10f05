"""The one error this package raises: a custom resource whose spec cannot be used as written.

``InvalidSpecError`` carries every problem found in one document (not just the first), each as a
``FieldError`` naming the field path the way ``kubectl explain`` does, e.g.
``spec.chart.spec.verify.matchOIDCIdentity[0].subject: invalid regular expression ...``.
It means "the spec must change": retrying without an edit cannot succeed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem at one field path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidSpecError(ValueError):
    """A document that chartguard cannot accept; ``errors`` lists every problem found."""

    def __init__(
        self, path: str, message: str, *, subject: str = "", others: Sequence[FieldError] = ()
    ) -> None:
        self.errors: tuple[FieldError, ...] = (FieldError(path, message), *others)
        # subject names the object ("HelmRelease default/podinfo") so a log line stands alone
        self.subject = subject
        super().__init__(self._render())

    @classmethod
    def aggregate(cls, errors: Sequence[FieldError], *, subject: str = "") -> InvalidSpecError:
        """One exception for several problems (``errors`` must not be empty)."""
        first, *rest = errors
        return cls(first.path, first.message, subject=subject, others=rest)

    @property
    def path(self) -> str:
        """Field path of the first problem."""
        return self.errors[0].path

    @property
    def message(self) -> str:
        """Message of the first problem."""
        return self.errors[0].message

    def _render(self) -> str:
        text = "; ".join(str(e) for e in self.errors)
        return f"{self.subject}: {text}" if self.subject else text
