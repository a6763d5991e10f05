"""``chartguard verify --local-image``: OCI image layouts, including real cosign signatures.

Layouts are written as ``oras copy -r --to-oci-layout`` and ``cosign save`` write them; the
reader must find the signed manifest, its ``.sig`` manifest and its referrers, check the
sha256 of every blob, and hand verification the same artifacts as the registry path.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from verify_support import Policy, Signing

from chartguard.cli import main
from chartguard.oci import OCIError
from chartguard.oci.layout import read_layout_signatures
from chartguard.reconcile.verification import build_policy, verify_artifacts
from chartguard.verify import VerificationFailedError, Verifier
from chartguard_testing import cosign_signer as cs
from chartguard_testing import registry_signer as rs

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "cosign-real"
GITHUB = "https://github.com/login/oauth"


def _verify(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def _verify_signatures(spec: str, *, keys: tuple[Path, ...] = (),
                       identity: tuple[str, str] | None = None,
                       predicate_types: tuple[str, ...] = ()) -> tuple[int, str]:
    """The signature verdict on a layout's image (the real fixtures sign container images,
    which ``chartguard verify`` refuses as not being charts)."""
    policy = build_policy(key_files=keys, identities=[identity] if identity else [],
                          bundle_predicate_types=predicate_types)
    try:
        result = verify_artifacts(Verifier(policy), read_layout_signatures(spec))
    except VerificationFailedError as err:
        return 1, str(err)
    return 0, result.summary()


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
def test_real_key_signed_layout_verifies_with_its_key_only(folder: str, tmp_path: Path) -> None:
    layout, digest = _real_legacy_layout(folder, tmp_path / "layout")
    code, text = _verify_signatures(str(layout), keys=(REAL / folder / "cosign.pub",))
    assert code == 0, text
    assert f"verified {digest}: legacy signature by key cosign.pub" in text
    wrong = tmp_path / "wrong.pub"
    wrong.write_bytes(cs.generate_key_pair().public_pem)
    code, text = _verify_signatures(str(layout), keys=(wrong,))
    assert code == 1
    assert "key wrong.pub: signature does not match" in text


def test_real_signed_container_image_is_not_verified_as_a_chart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = "containers-image-ci-key-cosign-valid"
    layout, digest = _real_legacy_layout(folder, tmp_path / "layout")
    code, text = _verify(capsys, "--local-image", str(layout), "--key",
                         str(REAL / folder / "cosign.pub"))
    assert code == 1
    assert f"manifest {digest} has media type " in text
    assert "not a Helm chart" in text


def test_real_keyless_layout_verifies_with_its_identity_and_not_another(tmp_path: Path) -> None:
    layout, digest = _real_legacy_layout("containers-image-ci-keyless-fulcio-rekor",
                                         tmp_path / "layout")
    code, text = _verify_signatures(f"{layout}@{digest}",
                                    identity=(f"^{re.escape(GITHUB)}$", "^mitr@redhat\\.com$"))
    assert code == 0, text
    assert "identity mitr@redhat.com (issuer https://github.com/login/oauth)" in text
    assert "Rekor log index 11605770" in text
    code, text = _verify_signatures(str(layout),
                                    identity=(f"^{re.escape(GITHUB)}$", "^someone@redhat\\.com$"))
    assert code == 1
    assert "certificate identity mitr@redhat.com not matched by ^someone@redhat\\.com$" in text


def test_real_v03_bundle_layout_verifies_as_a_referrer(tmp_path: Path) -> None:
    layout, digest = _real_bundle_layout(tmp_path / "layout")
    identity = ("^https://github\\.com/", "^cody@soyland\\.com$")
    attestation = "https://cosign.sigstore.dev/attestation/v1"
    # the real bundle is an attestation (cosign attest): not a signature unless accepted
    code, text = _verify_signatures(str(layout), identity=identity)
    assert code == 1
    assert f"bundle predicate type is '{attestation}'" in text
    code, text = _verify_signatures(str(layout), identity=identity,
                                    predicate_types=(attestation,))
    assert code == 0, text
    assert f"verified {digest}: bundle signature by identity cody@soyland.com" in text
    code, text = _verify_signatures(str(layout), identity=("^https://github\\.com/", "^mallory@"),
                                    predicate_types=(attestation,))
    assert code == 1
    assert "certificate identity cody@soyland.com not matched by ^mallory@" in text


def test_real_payload_with_one_flipped_byte_fails_in_a_consistent_layout(tmp_path: Path) -> None:
    folder = "containers-image-ci-key-cosign-valid"
    payload = bytearray((REAL / folder / "payload.json").read_bytes())
    payload[40] ^= 0x01  # stored under its own new digest: only the signature can catch it
    layout, _ = _real_legacy_layout(folder, tmp_path / "layout", payload=bytes(payload))
    code, text = _verify_signatures(str(layout), keys=(REAL / folder / "cosign.pub",))
    assert code == 1
    assert "key cosign.pub: signature does not match" in text


def test_signatures_without_the_signed_manifest_verify_no_chart(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = "containers-image-ci-key-cosign-valid"
    layout, digest = _real_legacy_layout(folder, tmp_path / "layout", with_signed=False)
    pub = REAL / folder / "cosign.pub"
    code, text = _verify_signatures(f"{layout}@{digest}", keys=(pub,))
    assert code == 0, text  # the signature itself is good
    code, text = _verify(capsys, "--local-image", f"{layout}@{digest}", "--key", str(pub))
    assert code == 1  # but there is no chart to vouch for
    assert f"does not hold the manifest {digest}" in text
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
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
    assert code == 2  # the user's error: the path given is no layout
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


def _index(layout: Path) -> list[dict[str, Any]]:
    manifests: list[dict[str, Any]] = json.loads((layout / "index.json").read_text())["manifests"]
    return manifests


def _write_index(layout: Path, manifests: list[dict[str, Any]]) -> None:
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))


def _signed_layout(signing: Signing) -> tuple[Path, Path]:
    pub = signing.key("cosign.pub")
    signing.push_legacy(cs.sign_legacy_with_key(signing.keys["cosign.pub"], signing.payload()))
    return signing.layout(), pub


def test_hostile_layout_json_exits_1_with_one_reason_and_no_traceback(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    layout, pub = _signed_layout(signing)
    manifests = _index(layout)
    manifests[0]["annotations"] = ["not", "a", "map"]
    _write_index(layout, manifests)
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 1
    assert "annotations is not a map" in text
    assert "Traceback" not in text


def test_deeply_nested_layout_json_is_one_clear_error(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    layout, pub = _signed_layout(signing)
    (layout / "index.json").write_text('{"manifests": ' + "[" * 100_000 + "]" * 100_000 + "}")
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 1
    assert "nested deeper than" in text
    assert "Traceback" not in text
    assert text.count("\n") == 1
    code = main(["verify", "--local-image", str(layout), "--key", str(pub), "--output", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == doc["exitCode"] == 1
    assert "nested deeper than" in doc["error"]


def test_tampered_chart_layer_in_a_layout_fails_though_the_signature_is_good(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    layout, pub = _signed_layout(signing)
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 0, text
    layer = rs.Blob(signing.chart.package.read_bytes(), "").digest
    blob = layout / "blobs" / "sha256" / layer.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 1
    assert f"the chart layer {layer} does not match its digest" in text
    assert text.count("\n") == 1


def _name_by_full_reference(signing: Signing, layout: Path, key: str = rs.REF_NAME,
                            by_digest: bool = False) -> None:
    """Rename the layout's entries as oras, crane and zarf do: full references."""
    repo = signing.chart.repository  # host:port/charts/demo
    manifests = _index(layout)
    for entry in manifests:
        name = entry.get("annotations", {}).pop(rs.REF_NAME, None)
        if name == signing.chart.version:
            full = (f"{repo}@{signing.chart.digest}" if by_digest
                    else f"{repo}:{signing.chart.version}")
            entry["annotations"][key] = full
        elif name:
            entry["annotations"][key] = f"{repo}:{name}"
    _write_index(layout, manifests)


@pytest.mark.parametrize(("key", "by_digest"), [
    (rs.REF_NAME, False), (rs.REF_NAME, True), ("io.containerd.image.name", False)],
    ids=["ref-name-tag", "ref-name-digest", "containerd-image-name"])
def test_layout_with_full_references_as_names_verifies(
        signing: Signing, capsys: pytest.CaptureFixture[str], key: str,
        by_digest: bool) -> None:
    layout, pub = _signed_layout(signing)
    _name_by_full_reference(signing, layout, key, by_digest)
    assert all(signing.registry.host in e["annotations"][key] for e in _index(layout))
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 0, text
    assert f"verified {signing.chart.digest}: legacy signature by key cosign.pub" in text


def _add_other_chart(signing: Signing, layout: Path, *,
                     subject: dict[str, Any] | None = None) -> str:
    other = signing.other()
    extra = rs.fetch_artifact(signing.registry, other.repository, other.digest)
    assert extra is not None
    if subject is not None:  # the same chart, now carrying a subject (oras push --subject)
        doc = json.loads(extra.manifest.data)
        doc["subject"] = subject
        extra = rs.Artifact(rs.Blob(json.dumps(doc).encode(), rs.OCI_MANIFEST), extra.blobs)
    writer = rs.LayoutWriter(layout)
    writer.manifests = _index(layout)
    digest = writer.add(extra, annotations={rs.REF_NAME: f"{other.repository}:9.9.9"})
    writer.write()
    return digest


def test_layout_image_is_chosen_by_its_tag_or_full_name(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    layout, pub = _signed_layout(signing)
    _name_by_full_reference(signing, layout)
    other = _add_other_chart(signing, layout)
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 1
    assert "holds 2 images" in text
    for spec in ("1.0.0", f"{signing.chart.repository}:1.0.0"):
        code, text = _verify(capsys, "--local-image", f"{layout}:{spec}", "--key", str(pub))
        assert code == 0, text
        assert f"@{signing.chart.digest}: verified" in text
    code, text = _verify(capsys, "--local-image", f"{layout}:9.9.9", "--key", str(pub))
    assert code == 1
    assert f"no signature for {other}" in text
    code, text = _verify(capsys, "--local-image", f"{layout}:2.0.0", "--key", str(pub))
    assert code == 1
    assert "no manifest is named '2.0.0'" in text
    assert f"{signing.chart.repository}:1.0.0" in text


def test_an_image_with_a_subject_is_not_dropped_to_make_another_the_only_one(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    layout, pub = _signed_layout(signing)
    subject = {"mediaType": rs.OCI_MANIFEST, "digest": signing.chart.digest,
               "size": len(rs.fetch_artifact(signing.registry, signing.chart.repository,
                                             signing.chart.digest).manifest.data)}  # type: ignore[union-attr]
    other = _add_other_chart(signing, layout, subject=subject)
    code, text = _verify(capsys, "--local-image", str(layout), "--key", str(pub))
    assert code == 1
    assert "holds 2 images" in text
    assert f"{other} (" in text
    assert f"subject {signing.chart.digest}" in text
    code, text = _verify(capsys, "--local-image", f"{layout}@{signing.chart.digest}",
                         "--key", str(pub))
    assert code == 0, text


def test_cosign_save_layout_with_unlisted_bundle_referrers_verifies(
        signing: Signing, capsys: pytest.CaptureFixture[str]) -> None:
    """cosign v3 `save` keeps bundle referrers in blobs/ without listing them."""
    signing.push_bundle(cs.sign_bundle_keyless(signing.sigstore, signing.chart.digest))
    chart = rs.fetch_artifact(signing.registry, signing.chart.repository, signing.chart.digest)
    assert chart is not None
    bundle = rs.bundle_referrer_artifact(
        cs.sign_bundle_keyless(signing.sigstore, signing.chart.digest),
        chart.manifest.descriptor())
    writer = rs.LayoutWriter(signing.tmp / "saved")
    writer.add(chart, annotations={rs.COSIGN_KIND: rs.COSIGN_KIND_IMAGE})
    writer.add(bundle, listed=False)
    layout = writer.write()
    policy = signing.keyless_policy()
    code, text = _verify(capsys, "--local-image", str(layout), *policy.flags())
    assert code == 0, text
    assert f"verified {signing.chart.digest}: bundle signature" in text
