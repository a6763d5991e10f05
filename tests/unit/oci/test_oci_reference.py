"""References: oci://host[:port]/path + chart name, and nothing else."""

from __future__ import annotations

import pytest

from chartguard.oci import ChartReference, InvalidReferenceError
from chartguard.untrusted import without_credentials


@pytest.mark.parametrize(("url", "chart", "host", "repository"), [
    ("oci://ghcr.io/stefanprodan/charts", "podinfo", "ghcr.io", "stefanprodan/charts/podinfo"),
    ("oci://127.0.0.1:5000/charts", "demo", "127.0.0.1:5000", "charts/demo"),
    ("oci://127.0.0.1:5000/charts/", "demo", "127.0.0.1:5000", "charts/demo"),
    ("oci://localhost:5000/a/b/c", "my-chart", "localhost:5000", "a/b/c/my-chart"),
    ("oci://registry.example.com", "demo", "registry.example.com", "demo"),
    ("oci://[::1]:5000/charts", "demo", "[::1]:5000", "charts/demo"),
    ("oci://Registry.Example.com/x_y/a.b", "c__d", "Registry.Example.com", "x_y/a.b/c__d"),
])
def test_valid_references(url: str, chart: str, host: str, repository: str) -> None:
    ref = ChartReference.parse(url, chart)
    assert (ref.host, ref.repository, ref.name) == (host, repository, chart)
    assert str(ref) == f"oci://{host}/{repository}"


def test_reference_is_frozen_and_str_is_the_chart_url() -> None:
    ref = ChartReference.parse("oci://127.0.0.1:5000/charts", "demo")
    assert str(ref) == "oci://127.0.0.1:5000/charts/demo"
    assert ref.url == "oci://127.0.0.1:5000/charts"
    with pytest.raises(AttributeError):
        ref.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("url", "chart"), [
    ("https://ghcr.io/charts", "demo"),
    ("http://127.0.0.1:5000/charts", "demo"),
    ("ghcr.io/charts", "demo"),
    ("OCI://ghcr.io/charts", "demo"),
    ("oci://", "demo"),
    ("oci:///charts", "demo"),
    ("oci://user:pass@ghcr.io/charts", "demo"),
    ("oci://ghcr.io/charts?x=1", "demo"),
    ("oci://ghcr.io/charts#frag", "demo"),
    ("oci://ghcr.io:99999/charts", "demo"),
    ("oci://ghcr.io:/charts", "demo"),
    ("oci://ghcr.io/Charts", "demo"),
    ("oci://ghcr.io/ch arts", "demo"),
    ("oci://ghcr.io//charts", "demo"),
    ("oci://ghcr.io/charts", "Demo"),
    ("oci://ghcr.io/charts", "de/mo"),
    ("oci://ghcr.io/charts", ""),
    ("oci://ghcr.io/charts", "demo:1.0.0"),
    ("oci://-bad-.io/charts", "demo"),
    ("", "demo"),
])
def test_invalid_references_name_the_value(url: str, chart: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        ChartReference.parse(url, chart)
    message = str(caught.value)
    # the URL as written, but never a password in it (nor a query, which may hold a token)
    assert repr(without_credentials(url)) in message or repr(chart) in message
    assert "user:pass" not in message


def test_parse_chart_url_splits_the_chart_name_off() -> None:
    ref = ChartReference.parse_chart_url("oci://127.0.0.1:5000/charts/demo")
    assert (ref.host, ref.repository, ref.name) == ("127.0.0.1:5000", "charts/demo", "demo")
    for bad in ("oci://127.0.0.1:5000", "demo", "https://x.io/charts/demo"):
        with pytest.raises(InvalidReferenceError, match="oci://"):
            ChartReference.parse_chart_url(bad)


@pytest.mark.parametrize("url", [
    "oci://chartguard:pw-9c1e77@ghcr.io/charts",
    "oci://ghcr.io/charts?token=pw-9c1e77",
    "https://chartguard:pw-9c1e77@ghcr.io/charts",
    "oci://chartguard:pw-9c1e77@ghcr.io/Bad_Path",
])
def test_a_refused_url_is_quoted_without_its_credentials(url: str) -> None:
    with pytest.raises(InvalidReferenceError) as raised:
        ChartReference.parse(url, "app")
    assert "pw-9c1e77" not in str(raised.value)
    assert "[redacted]" in str(raised.value)
