"""Chart references: ``oci://host[:port]/path`` (a HelmRepository URL) plus a chart name."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from chartguard.oci.errors import InvalidReferenceError
from chartguard.untrusted import without_credentials

# One repository path component, as the OCI distribution spec defines it.
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?)*")
_SCHEME = "oci://"
_EXAMPLE = "oci://registry.example.com/charts"


def _valid_host(host: str) -> bool:
    name, port = host, ""
    if host.startswith("["):  # [IPv6]:port
        end = host.find("]")
        if end < 0:
            return False
        name, port = host[1:end], host[end + 1:]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return False
        if port and not port.startswith(":"):
            return False
        port = port[1:]
    else:
        if host.count(":") > 1:
            return False
        name, _, port = host.partition(":")
        if ":" in host and not port:
            return False
        if not _HOSTNAME.fullmatch(name):
            return False
    if port:
        return port.isdigit() and 0 < int(port) < 65536
    return True


def shown(url: object) -> object:
    """A refused URL as its message quotes it back: never with a password written into it."""
    return without_credentials(url) if isinstance(url, str) else url


@dataclass(frozen=True)
class ChartReference:
    """A chart in an OCI registry: ``host`` (with port), ``repository`` (path/name), ``name``."""

    host: str
    repository: str
    name: str

    @classmethod
    def parse(cls, url: str, chart: str) -> ChartReference:
        """Join a HelmRepository ``url`` (``oci://host[:port][/path]``) and a chart name."""
        if not isinstance(url, str) or not url.startswith(_SCHEME):
            raise InvalidReferenceError(
                f"repository URL {shown(url)!r} is not an OCI URL: write it as {_EXAMPLE}")
        rest = url[len(_SCHEME):].rstrip("/")
        if any(c in rest for c in "?#@ \t\n"):
            raise InvalidReferenceError(
                f"repository URL {shown(url)!r} must not contain credentials, a query, a "
                f"fragment or spaces: write it as {_EXAMPLE}")
        host, _, path = rest.partition("/")
        if not host or not _valid_host(host):
            raise InvalidReferenceError(
                f"repository URL {shown(url)!r} has no valid host[:port]: write it as "
                f"{_EXAMPLE}")
        parts = path.split("/") if path else []
        for part in parts:
            if not _COMPONENT.fullmatch(part):
                raise InvalidReferenceError(
                    f"repository URL {shown(url)!r} has an invalid path segment {part!r}: OCI "
                    "paths are lower-case letters, digits and single separators (. _ __ -)")
        if not isinstance(chart, str) or not _COMPONENT.fullmatch(chart):
            raise InvalidReferenceError(
                f"chart name {chart!r} is not a valid OCI repository name component: use "
                "lower-case letters, digits and single separators (. _ __ -)")
        return cls(host=host, repository="/".join([*parts, chart]), name=chart)

    @classmethod
    def parse_chart_url(cls, url: str) -> ChartReference:
        """Split ``oci://host[:port]/path/chart`` (as ``helm pull`` takes it) and parse it."""
        base, sep, chart = url.rstrip("/").rpartition("/")
        if not sep or not base.startswith(_SCHEME) or base == _SCHEME.rstrip("/"):
            raise InvalidReferenceError(
                f"chart URL {shown(url)!r} is not oci://host[:port]/path/chart: "
                "write it as oci://registry.example.com/charts/mychart")
        return cls.parse(base, chart)

    @property
    def url(self) -> str:
        """The repository URL this chart lives under (``oci://host/path``)."""
        parent = self.repository.rpartition("/")[0]
        return f"{_SCHEME}{self.host}/{parent}" if parent else f"{_SCHEME}{self.host}"

    def __str__(self) -> str:
        return f"{_SCHEME}{self.host}/{self.repository}"
