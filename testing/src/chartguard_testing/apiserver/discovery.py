"""Legacy (unaggregated) discovery documents: /version, /api, /apis and each group version.

Clients that ask for aggregated discovery (``as=APIGroupDiscoveryList``) get these plain
documents with ``Content-Type: application/json`` and fall back to legacy discovery.
"""

from __future__ import annotations

from chartguard_testing.apiserver.resources import Catalog, Obj, ResourceType

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

VERSION: Obj = {"major": "1", "minor": "35", "gitVersion": "v1.35.0",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
                "goVersion": "go1.25", "compiler": "gc", "platform": "linux/amd64"}


def api_versions(server_address: str) -> Obj:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def _group(name: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": entries,
            "preferredVersion": entries[0]}


def api_groups(catalog: Catalog) -> Obj:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [_group(g, vs) for g, vs in sorted(catalog.group_versions().items())]}


def api_group(catalog: Catalog, name: str) -> Obj | None:
    versions = catalog.group_versions().get(name)
    return _group(name, versions) if versions else None


def _entries(rt: ResourceType) -> list[Obj]:
    main: Obj = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                 "kind": rt.kind, "verbs": VERBS}
    if rt.short_names:
        main["shortNames"] = rt.short_names
    if rt.categories:
        main["categories"] = rt.categories
    out = [main]
    if rt.status_subresource:
        out.append({"name": f"{rt.plural}/status", "singularName": "",
                    "namespaced": rt.namespaced, "kind": rt.kind,
                    "verbs": ["get", "patch", "update"]})
    return out


def resource_list(catalog: Catalog, group: str, version: str) -> Obj | None:
    types = catalog.in_group_version(group, version)
    if not types:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": [e for rt in types for e in _entries(rt)]}
