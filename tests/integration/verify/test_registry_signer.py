"""The test equipment stores signatures in the registry exactly in cosign's shapes.

If these shapes drifted from cosign's, every verification test would be testing a format
nobody writes; so they are pinned here against the bytes the real registry serves.
"""

from __future__ import annotations

import hashlib
import json

from verify_support import Signing

from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs

EMPTY_CONFIG = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def _manifest(signing: Signing, reference: str) -> dict[str, object]:
    writer = rs.RegistryWriter(signing.registry)
    blob = writer.get_manifest(rs.repository_path(signing.chart.repository), reference)
    assert blob is not None, reference
    doc: dict[str, object] = json.loads(blob.data)
    return doc


def test_legacy_sig_manifest_has_cosigns_shape_and_signing_again_appends(
        signing: Signing) -> None:
    signing.key("cosign.pub")
    first = cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload())
    second = cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload())
    signing.push_legacy(first)
    signing.push_legacy(second)
    doc = _manifest(signing, f"sha256-{signing.chart.digest.split(':')[1]}.sig")
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"  # type: ignore[index]
    layers = doc["layers"]
    assert isinstance(layers, list)
    assert [layer["mediaType"] for layer in layers] == [rs.SIMPLESIGNING] * 2
    assert [layer["annotations"] for layer in layers] == [
        dict(first.annotations), dict(second.annotations)]
    assert layers[0]["digest"] == "sha256:" + hashlib.sha256(first.payload).hexdigest()
    # the payload is stored byte for byte: cosign verifies over these exact bytes
    writer = rs.RegistryWriter(signing.registry)
    stored = writer.get_blob(rs.repository_path(signing.chart.repository), layers[0]["digest"])
    assert stored == first.payload


def test_bundle_is_a_referrer_listed_in_the_fallback_tag_index(signing: Signing) -> None:
    bundles = [cs.sign_bundle_keyless(signing.sigstore, signing.chart.digest) for _ in range(2)]
    referrers = [rs.push_bundle(signing.registry, signing.chart.repository,
                                signing.chart.digest, b) for b in bundles]
    doc = _manifest(signing, referrers[0])
    assert doc["artifactType"] == rs.BUNDLE_V03
    assert doc["config"] == {"mediaType": rs.OCI_EMPTY, "digest": EMPTY_CONFIG, "size": 2}
    subject = doc["subject"]
    assert isinstance(subject, dict)
    assert subject["digest"] == signing.chart.digest
    assert subject["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["layers"] == [{"mediaType": rs.BUNDLE_V03, "size": len(bundles[0]),
                              "digest": "sha256:" + hashlib.sha256(bundles[0]).hexdigest()}]
    index = _manifest(signing, f"sha256-{signing.chart.digest.split(':')[1]}")
    assert index["mediaType"] == rs.OCI_INDEX
    entries = index["manifests"]
    assert isinstance(entries, list)
    assert [e["digest"] for e in entries] == referrers  # created, then appended to
    assert {e["artifactType"] for e in entries} == {rs.BUNDLE_V03}
    assert entries[0]["annotations"]["dev.sigstore.bundle.content"] == "dsse-envelope"


def test_layout_copy_lists_tags_and_untagged_referrers_like_oras(signing: Signing) -> None:
    signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    referrer = rs.push_bundle(signing.registry, signing.chart.repository, signing.chart.digest,
                              cs.sign_bundle_keyless(signing.sigstore, signing.chart.digest))
    layout = signing.layout()
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    names = {m["digest"]: m.get("annotations", {}).get(rs.REF_NAME)
             for m in index["manifests"]}
    assert names[signing.chart.digest] == "1.0.0"
    assert names[referrer] is None
    assert rs.sig_tag(signing.chart.digest) in names.values()
    for blob in (layout / "blobs" / "sha256").iterdir():  # content-addressed, every one
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
