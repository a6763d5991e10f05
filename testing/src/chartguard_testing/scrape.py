"""Reading Prometheus' text format, as a scrape of ``/metrics`` (or the registry's own
exposition in a unit test) gives it: sample values by name and labels, summed over the labels
a test does not name."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Samples:
    """Every sample of one scrape: (name, sorted labels) -> value."""

    values: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]

    @classmethod
    def parse(cls, text: str | bytes) -> Samples:
        if isinstance(text, bytes):
            text = text.decode()
        values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(values)

    def since(self, earlier: Samples) -> Samples:
        """What moved since ``earlier``: each sample less its value then (0 when new)."""
        return Samples({key: value - earlier.values.get(key, 0.0)
                        for key, value in self.values.items()})

    def total(self, name: str, /, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0 when none)."""
        wanted = set(labels.items())
        return sum(value for (sample, have), value in self.values.items()
                   if sample == name and wanted <= set(have))

    def has(self, name: str, /, **labels: str) -> bool:
        wanted = set(labels.items())
        return any(sample == name and wanted <= set(have) for sample, have in self.values)

    def names(self) -> set[str]:
        return {name for name, _ in self.values}


def scrape(url: str, timeout: float = 5.0) -> Samples:
    """GET ``url`` (a ``/metrics`` endpoint on 127.0.0.1) and parse it."""
    with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - http test URL
        return Samples.parse(answer.read())
