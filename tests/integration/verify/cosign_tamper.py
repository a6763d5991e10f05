"""Changing what real cosign stored in the registry, the way an attacker could.

Each function rewrites manifests through the plain distribution API (no cosign, no helm) so
the same stored state is then shown to ``cosign verify`` and to ``chartguard verify``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from chartguard_testing.registry import Registry
from chartguard_testing.registry_signer import (
    OCI_INDEX,
    Blob,
    RegistryWriter,
    referrers_tag,
    repository_path,
    sig_tag,
)

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[len(raw) // 2] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _manifest(writer: RegistryWriter, repo: str, reference: str) -> tuple[Blob, dict[str, Any]]:
    blob = writer.get_manifest(repo, reference)
    if blob is None:
        raise AssertionError(f"nothing stored at {repo}:{reference}")
    doc: dict[str, Any] = json.loads(blob.data)
    return blob, doc


def flip_legacy_signature(registry: Registry, repository: str, digest: str) -> None:
    """Flip one bit of every signature annotation of the ``.sig`` manifest (same tag)."""
    writer = RegistryWriter(registry)
    repo = repository_path(repository)
    blob, doc = _manifest(writer, repo, sig_tag(digest))
    for layer in doc["layers"]:
        notes = layer["annotations"]
        notes[SIGNATURE_ANNOTATION] = _flip_b64(notes[SIGNATURE_ANNOTATION])
    writer.put_manifest(repo, sig_tag(digest), Blob(_dumps(doc), blob.media_type))


def swap_legacy_payload_digest(registry: Registry, repository: str, digest: str,
                               claimed: str) -> None:
    """Rewrite the signed payload to claim ``claimed`` (signature kept: it no longer matches)."""
    writer = RegistryWriter(registry)
    repo = repository_path(repository)
    blob, doc = _manifest(writer, repo, sig_tag(digest))
    for layer in doc["layers"]:
        payload = writer.get_blob(repo, layer["digest"])
        changed = Blob(payload.replace(digest.encode(), claimed.encode()), layer["mediaType"])
        assert changed.data != payload, "the payload did not name the digest"
        writer.put_blob(repo, changed)
        layer.update(digest=changed.digest, size=len(changed.data))
    writer.put_manifest(repo, sig_tag(digest), Blob(_dumps(doc), blob.media_type))


def copy_legacy_signature(registry: Registry, repository: str, source: str,
                          target: str) -> None:
    """Store ``source``'s ``.sig`` manifest, unchanged, as the signature of ``target``."""
    writer = RegistryWriter(registry)
    repo = repository_path(repository)
    blob, _ = _manifest(writer, repo, sig_tag(source))
    writer.put_manifest(repo, sig_tag(target), blob)


def _referrers(writer: RegistryWriter, repo: str,
               digest: str) -> tuple[Blob, dict[str, Any]]:
    return _manifest(writer, repo, referrers_tag(digest))


def _rewrite_referrers(writer: RegistryWriter, repo: str, digest: str, *,
                       bundle_change: Any = None, subject: dict[str, Any] | None = None,
                       file_under: str | None = None) -> int:
    """Rewrite every referrer of ``digest``: its bundle layer and/or its subject; list the
    new manifests under ``file_under``'s referrers tag (default: ``digest``'s)."""
    _, index = _referrers(writer, repo, digest)
    entries: list[dict[str, Any]] = []
    for entry in index["manifests"]:
        blob, doc = _manifest(writer, repo, entry["digest"])
        if bundle_change is not None:
            for layer in doc["layers"]:
                data = writer.get_blob(repo, layer["digest"])
                new = Blob(bundle_change(data), layer["mediaType"])
                writer.put_blob(repo, new)
                layer.update(digest=new.digest, size=len(new.data))
        if subject is not None:
            doc["subject"] = subject
        new_manifest = Blob(_dumps(doc), blob.media_type)
        writer.put_manifest(repo, new_manifest.digest, new_manifest)
        entries.append({**entry, "digest": new_manifest.digest, "size": len(new_manifest.data)})
    new_index = Blob(_dumps({**index, "manifests": entries}), OCI_INDEX)
    writer.put_manifest(repo, referrers_tag(file_under or digest), new_index)
    return len(entries)


def flip_bundle_signature(registry: Registry, repository: str, digest: str) -> None:
    """Flip one bit of the DSSE signature in every bundle referrer of ``digest``."""
    def change(data: bytes) -> bytes:
        bundle = json.loads(data)
        for sig in bundle["dsseEnvelope"]["signatures"]:
            sig["sig"] = _flip_b64(sig["sig"])
        return _dumps(bundle)

    writer = RegistryWriter(registry)
    assert _rewrite_referrers(writer, repository_path(repository), digest,
                              bundle_change=change) > 0


def copy_bundles(registry: Registry, repository: str, source: str, target: str) -> None:
    """File ``source``'s bundle referrers as referrers of ``target`` (subject rewritten to
    ``target``, bundles unchanged): the in-toto statement still names ``source``."""
    writer = RegistryWriter(registry)
    repo = repository_path(repository)
    subject = writer.descriptor(repo, target)
    assert _rewrite_referrers(writer, repo, source, subject=subject, file_under=target) > 0
