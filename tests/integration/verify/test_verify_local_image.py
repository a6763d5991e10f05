"""``chartguard verify --local-image``: OCI image layouts, including real cosign signatures.

Layouts are written as ``oras copy -r --to-oci-layout`` and ``cosign save`` write them; the
reader must find the signed manifest, its ``.sig`` manifest and its referrers, check the
sha256 of every blob, and hand verification the same artifacts as the registry path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from verify_support import Policy, Signing

from chartguard.cli import main
from chartguard.oci import OCIError
from chartguard.oci.layout import read_layout_signatures
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "cosign-real"
GITHUB = "https://github.com/login/oauth"


def _verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def _real_legacy_layout(folder: str, directory: Path, *, with_signed: bool = True,
                        payload: bytes | None = None) -> tuple[Path, str]:
    """A layout holding a real cosign ``.sig`` layer (and the manifest it signs)."""
    src = REAL / folder
    manifest = (src / "manifest.json").read_bytes()
    signed = rs.Artifact(rs.Blob(manifest, json.loads(manifest)["mediaType"]))
    layer = rs.SigLayer(payload or (src / "payload.json").read_bytes(),
                        json.loads((src / "annotations.json").read_text()))
    layout = rs.write_oci_layout(directory, signed=signed if with_signed else None,
                                 digest=signed.manifest.digest,
                                 legacy=rs.legacy_signature_artifact([layer]))
    return layout, signed.manifest.digest


def _real_bundle_layout(directory: Path) -> tuple[Path, str]:
    src = REAL / "cosign-oci-attestation-bundle-v0.3"
    manifest = (src / "manifest.reconstructed-empty-image.json").read_bytes()
    config = (src / "config.reconstructed-empty-image.json").read_bytes()
    media_type = json.loads(manifest)["mediaType"]
    signed = rs.Artifact(rs.Blob(manifest, media_type),
                         (rs.Blob(config, json.loads(manifest)["config"]["mediaType"]),))
    bundle = rs.bundle_referrer_artifact((src / "oci-attestation.sigstore.json").read_bytes(),
                                         signed.manifest.descriptor())
    return rs.write_oci_layout(directory, signed=signed, bundles=[bundle]), signed.manifest.digest


# -- real cosign signatures ------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["containers-image-ci-key-cosign-valid",
                                    "containers-image-ci-key-rekor-valid"])
def test_real_key_signed_layout_verifies_with_its_key_only(
        folder: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout, digest = _real_legacy_layout(folder, tmp_path / "layout")
    code, text = _verify(capsys, "--local-image", str(layout), "--key",
                         str(REAL / folder / "cosign.pub"))
    assert code == 0, text
    assert f"verified {digest}: legacy signature by key cosign.pub" in text
    wrong = tmp_path / "wrong.pub"
    wrong.write_bytes(cs.generate_key_pair().public_pem)
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(wrong))
    assert code == 1
    assert "key wrong.pub: signature does not match" in text


def test_real_keyless_layout_verifies_with_its_identity_and_not_another(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout, digest = _real_legacy_layout("containers-image-ci-keyless-fulcio-rekor",
                                         tmp_path / "layout")
    code, text = _verify(capsys, "--local-image", f"{layout}@{digest}",
                         "--certificate-identity", "mitr@redhat.com",
                         "--certificate-oidc-issuer", GITHUB)
    assert code == 0, text
    assert "identity mitr@redhat.com (issuer https://github.com/login/oauth)" in text
    assert "Rekor log index 11605770" in text
    code, text = _verify(capsys, "--local-image", str(layout),
                         "--certificate-identity", "someone@redhat.com",
                         "--certificate-oidc-issuer", GITHUB)
    assert code == 1
    assert "certificate identity mitr@redhat.com not matched by ^someone@redhat\\.com$" in text


def test_real_v03_bundle_layout_verifies_as_a_referrer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout, digest = _real_bundle_layout(tmp_path / "layout")
    identity = ("--certificate-identity-regexp", "^cody@soyland\\.com$",
                "--certificate-oidc-issuer-regexp", "^https://github\\.com/")
    # the real bundle is an attestation (cosign attest): not a signature unless accepted
    code, text = _verify(capsys, "--local-image", str(layout), *identity)
    assert code == 1
    assert "bundle predicate type is 'https://cosign.sigstore.dev/attestation/v1'" in text
    code, text = _verify(capsys, "--local-image", str(layout), *identity,
                         "--bundle-predicate-type", "https://cosign.sigstore.dev/attestation/v1")
    assert code == 0, text
    assert f"verified {digest}: bundle signature by identity cody@soyland.com" in text
    code, text = _verify(capsys, "--local-image", str(layout),
                         "--certificate-identity-regexp", "^mallory@",
                         "--certificate-oidc-issuer-regexp", "^https://github\\.com/",
                         "--bundle-predicate-type", "https://cosign.sigstore.dev/attestation/v1")
    assert code == 1
    assert "certificate identity cody@soyland.com not matched by ^mallory@" in text


def test_real_payload_with_one_flipped_byte_fails_in_a_consistent_layout(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = "containers-image-ci-key-cosign-valid"
    payload = bytearray((REAL / folder / "payload.json").read_bytes())
    payload[40] ^= 0x01  # stored under its own new digest: only the signature can catch it
    layout, _ = _real_legacy_layout(folder, tmp_path / "layout", payload=bytes(payload))
    code, text = _verify(capsys, "--local-image", str(layout), "--key",
                         str(REAL / folder / "cosign.pub"))
    assert code == 1
    assert "key cosign.pub: signature does not match" in text


def test_signed_manifest_may_be_absent_when_its_digest_is_given(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = "containers-image-ci-key-cosign-valid"
    layout, digest = _real_legacy_layout(folder, tmp_path / "layout", with_signed=False)
    pub = str(REAL / folder / "cosign.pub")
    code, text = _verify(capsys, "--local-image", f"{layout}@{digest}", "--key", pub)
    assert code == 0, text
    code, text = _verify(capsys, "--local-image", str(layout), "--key", pub)
    assert code == 1
    assert "holds no image" in text
    assert "DIR@sha256:<digest>" in text


# -- layouts copied from the registry ---------------------------------------------------------


def test_cosign_save_style_layout_verifies(signing: Signing,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    pub = signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    layout = signing.layout(style="cosign")
    index = json.loads((layout / "index.json").read_text())
    assert {m["annotations"]["kind"] for m in index["manifests"]} == {
        "dev.cosignproject.cosign/image", "dev.cosignproject.cosign/sigs"}
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 0, text
    assert f"verified {signing.chart.digest}" in text


def test_layout_and_registry_give_verification_the_same_signatures(signing: Signing) -> None:
    signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    signing.push_bundle(cs.sign_bundle_keyless(signing.sigstore, signing.chart.digest))
    from_registry = signing.artifacts()
    from_layout = read_layout_signatures(str(signing.layout()))
    assert from_layout.digest == from_registry.digest == signing.chart.digest
    assert [(x.data, dict(x.annotations), x.media_type) for x in from_layout.legacy] == [
        (x.data, dict(x.annotations), x.media_type) for x in from_registry.legacy]
    assert [(r.artifact_type, r.manifest_digest, [x.data for x in r.layers])
            for r in from_layout.referrers] == [
        (r.artifact_type, r.manifest_digest, [x.data for x in r.layers])
        for r in from_registry.referrers]
    assert len(from_layout.legacy) == 1
    assert len(from_layout.referrers) == 1


def test_tampered_blob_in_layout_is_refused_by_its_digest(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    pub = signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    layout = signing.layout()
    sig = read_layout_signatures(str(layout)).legacy[0]
    blob = layout / "blobs" / "sha256" / rs.Blob(sig.data, "").digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[5] ^= 0x01
    blob.write_bytes(bytes(data))
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 1
    assert "hashes to sha256:" in text
    assert "tampered" in text


def test_layout_with_two_images_needs_the_digest(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    pub = signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    layout = signing.layout()
    other = signing.other()
    extra = rs.fetch_artifact(signing.registry, other.repository, other.digest)
    assert extra is not None
    writer = rs.LayoutWriter(layout)
    writer.manifests = json.loads((layout / "index.json").read_text())["manifests"]
    writer.add(extra, annotations={rs.REF_NAME: "other"})
    writer.write()
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 1
    assert "holds 2 images" in text
    assert signing.chart.digest in text
    assert other.digest in text
    code, text = _verify(capsys, "--local-image", f"{layout}@{signing.chart.digest}",
                         "--key", str(pub))
    assert code == 0, text


def test_directory_that_is_not_a_layout_is_refused(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    pub = tmp_path / "cosign.pub"
    pub.write_bytes(cs.generate_key_pair().public_pem)
    code, text = _verify(capsys, "--local-image", str(tmp_path / "empty"), "--key", str(pub))
    assert code == 1
    assert "not an OCI image layout" in text
    code, text = _verify(capsys, "--local-image", f"{tmp_path}@sha256:abc", "--key", str(pub))
    assert code == 2
    assert "is not a sha256 digest" in text


def test_unsigned_layout_says_where_it_looked(signing: Signing, tmp_path: Path) -> None:
    layout = signing.layout()
    artifacts = read_layout_signatures(str(layout))
    assert artifacts.legacy == ()
    assert artifacts.referrers == ()
    assert any(".sig" in place for place in artifacts.looked_at)
    shutil.rmtree(layout / "blobs")
    with pytest.raises(OCIError, match="is missing"):  # the manifest blob is gone
        read_layout_signatures(str(layout))


def test_keyless_layout_without_identity_verifies_with_a_warning(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    signing.push_bundle(cs.sign_bundle_keyless(signing.sigstore, signing.chart.digest))
    outcome = signing.via_layout(Policy(trusted_root=signing.trusted_root()), capsys)
    assert outcome.code == 0, outcome.text
    assert "warning:" in outcome.text
    assert "ANY Fulcio identity was accepted" in outcome.text


def test_hostile_layout_json_exits_1_with_one_reason_and_no_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout, digest = _real_legacy_layout("containers-image-ci-key-cosign-valid",
                                         tmp_path / "layout")
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"] = ["not", "a", "map"]
    (layout / "index.json").write_text(json.dumps(index))
    code, text = _verify(capsys, "--local-image", f"{layout}@{digest}", "--key",
                         str(REAL / "containers-image-ci-key-cosign-valid" / "cosign.pub"))
    assert code == 1
    assert "annotations is not a map" in text
    assert "Traceback" not in text
