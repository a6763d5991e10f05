"""Fixtures for the OCI client tests (helpers live in ``oci_helpers``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from custom_registries import ClientCert, TokenService, run_mtls_registry, run_token_registry
from oci_helpers import PaginatingProxy, RawRegistry, RedirectingProxy, client_for

from chartguard.oci import RegistryClient
from chartguard_testing.registry import Registry, TLSFiles


@pytest.fixture
def raw_registry(registry: Registry) -> RawRegistry:
    return RawRegistry(registry)


@pytest.fixture
def make_client() -> Iterator[Callable[..., RegistryClient]]:
    made: list[RegistryClient] = []

    def make(registry: Registry, **kw: Any) -> RegistryClient:
        client = client_for(registry, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def paginating_proxy(registry: Registry) -> Iterator[Callable[..., PaginatingProxy]]:
    proxies: list[PaginatingProxy] = []

    def make(page: int, referrers_api: str | None = None) -> PaginatingProxy:
        proxies.append(PaginatingProxy(registry, page, referrers_api))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenService]]:
    """A registry asking for bearer tokens (user ``chartguard`` / ``t0ken-Passw0rd``)."""
    with run_token_registry(tmp_path, "chartguard", "t0ken-Passw0rd") as pair:
        yield pair


@pytest.fixture
def mtls_registry(tmp_path: Path) -> Iterator[tuple[Registry, ClientCert]]:
    """A TLS registry that demands a client certificate signed by its CA."""
    with run_mtls_registry(tmp_path) as pair:
        yield pair


@pytest.fixture
def tls_token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenService]]:
    """A TLS registry whose token realm is plain HTTP (a downgrade a client must refuse)."""
    with run_token_registry(tmp_path, "chartguard", "t0ken-Passw0rd", tls=True) as pair:
        yield pair


@pytest.fixture
def redirecting_proxy() -> Iterator[Callable[..., RedirectingProxy]]:
    proxies: list[RedirectingProxy] = []

    def make(registry: Registry, status: int = 307,
             tls: TLSFiles | None = None) -> RedirectingProxy:
        proxies.append(RedirectingProxy(registry, status, tls))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()
