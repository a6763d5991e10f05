"""The OCI layout reader refuses what it cannot trust and finds what cosign and oras wrote.

Layouts here are written directly (no registry needed): hostile index entries, sizes that
lie, nested referrer indexes as ``oras copy`` leaves them when it copies the fallback tag.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chartguard.oci import DigestMismatchError, SizeLimitExceededError
from chartguard.oci.layout import LayoutError, LocalImage, OCILayout, read_layout_signatures
from chartguard_testing import registry_signer as rs

SIGNED = rs.Artifact(rs.Blob(json.dumps({
    "schemaVersion": 2, "mediaType": rs.OCI_MANIFEST,
    "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json",
               "digest": "sha256:" + "0" * 64, "size": 1}, "layers": []}).encode(),
    rs.OCI_MANIFEST))
DIGEST = SIGNED.manifest.digest


def _layout(tmp_path: Path) -> rs.LayoutWriter:
    return rs.LayoutWriter(tmp_path / "layout")


def _write_index(layout: Path, manifests: list[dict[str, object]]) -> None:
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))


def test_digest_in_index_that_is_not_sha256_hex_is_refused(tmp_path: Path) -> None:
    root = _layout(tmp_path).write()
    _write_index(root, [{"mediaType": rs.OCI_MANIFEST, "digest": "sha256:../../../etc/passwd",
                         "size": 1}])
    with pytest.raises(LayoutError, match="is not sha256:<hex>"):
        read_layout_signatures(LocalImage(root, DIGEST))


def test_size_that_disagrees_with_the_descriptor_is_refused(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED)
    writer.manifests[0]["size"] += 1
    with pytest.raises(DigestMismatchError, match="its descriptor says"):
        read_layout_signatures(str(writer.write()))


def test_oversized_index_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    root = _layout(tmp_path).write()
    (root / "index.json").write_bytes(b" " * (5 * 1024 * 1024))
    with pytest.raises(SizeLimitExceededError):
        read_layout_signatures(str(root))


def test_referrers_inside_a_copied_fallback_index_are_found(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED, annotations={rs.REF_NAME: "1.0.0"})
    bundle = rs.bundle_referrer_artifact(b'{"mediaType":"x"}', SIGNED.manifest.descriptor())
    writer.add(bundle, listed=False)
    # the fallback tag's index itself copied into the layout, tagged sha256-<hex>
    index = rs.Artifact(rs.Blob(json.dumps({
        "schemaVersion": 2, "mediaType": rs.OCI_INDEX,
        "manifests": [rs.referrer_index_entry(bundle)]}).encode(), rs.OCI_INDEX))
    writer.add(index, annotations={rs.REF_NAME: rs.referrers_tag(DIGEST)})
    found = read_layout_signatures(str(writer.write()))
    assert found.digest == DIGEST
    assert [r.manifest_digest for r in found.referrers] == [bundle.manifest.digest]
    assert found.referrers[0].layers[0].data == b'{"mediaType":"x"}'


def test_signature_of_another_digest_is_not_picked_up(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED)
    other = "sha256:" + "1" * 64
    legacy = rs.legacy_signature_artifact([rs.SigLayer(b"{}", {})])
    writer.add(legacy, annotations={rs.REF_NAME: rs.sig_tag(other)})
    found = read_layout_signatures(str(writer.write()))
    assert found.digest == DIGEST
    assert found.legacy == ()
    assert found.looked_at[0].startswith(f"manifest named {rs.sig_tag(DIGEST)}")


def test_local_image_spec_parses_dir_and_digest() -> None:
    assert LocalImage.parse("/a/b") == LocalImage(Path("/a/b"))
    assert LocalImage.parse("/a@b/c") == LocalImage(Path("/a@b/c"))
    assert LocalImage.parse(f"/a@b/c@{DIGEST}") == LocalImage(Path("/a@b/c"), DIGEST)
    with pytest.raises(LayoutError, match="not a sha256 digest"):
        LocalImage.parse("/a/b@sha256:XYZ")


# -- security review: a hostile layout is refused with a reason, never a traceback -------------


def _blob(root: Path, data: bytes) -> dict[str, object]:
    import hashlib

    hexdigest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / hexdigest).write_bytes(data)
    return {"mediaType": rs.OCI_MANIFEST, "digest": f"sha256:{hexdigest}", "size": len(data)}


def _sig_manifest(root: Path, layers: object) -> dict[str, object]:
    manifest = json.dumps({"schemaVersion": 2, "mediaType": rs.OCI_MANIFEST,
                           "layers": layers}).encode()
    return {**_blob(root, manifest), "annotations": {rs.REF_NAME: rs.sig_tag(DIGEST)}}


@pytest.mark.parametrize("case", ["manifests-not-a-list", "annotations-not-a-map",
                                  "layers-not-a-list", "layer-annotations-not-a-map",
                                  "nested-manifests-not-a-list", "index-not-an-object"])
def test_malformed_layout_json_is_a_layout_error(tmp_path: Path, case: str) -> None:
    root = _layout(tmp_path).write()
    layer = _blob(root, b"{}")
    manifests: object
    if case == "manifests-not-a-list":
        manifests = 5
    elif case == "annotations-not-a-map":
        manifests = [{**_blob(root, b"{}"), "annotations": ["x"]}]
    elif case == "layers-not-a-list":
        manifests = [_sig_manifest(root, 7)]
    elif case == "layer-annotations-not-a-map":
        manifests = [_sig_manifest(root, [{**layer, "annotations": "zz"}])]
    elif case == "nested-manifests-not-a-list":
        nested = json.dumps({"schemaVersion": 2, "mediaType": rs.OCI_INDEX,
                             "manifests": 3}).encode()
        manifests = [{**_blob(root, nested), "mediaType": rs.OCI_INDEX}]
    else:
        (root / "index.json").write_text("[]")
        manifests = None
    if manifests is not None:
        (root / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                     "manifests": manifests}))
    with pytest.raises(LayoutError, match=r"not a (list|map|JSON object)"):
        read_layout_signatures(LocalImage(root, DIGEST))


# -- nested indexes are walked once each, within bounds ------------------------------------------


def _index_blob(root: Path, entries: list[dict[str, object]]) -> dict[str, object]:
    data = json.dumps({"schemaVersion": 2, "mediaType": rs.OCI_INDEX,
                       "manifests": entries}).encode()
    return {**_blob(root, data), "mediaType": rs.OCI_INDEX}


def test_fan_out_indexes_are_read_once_each(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED, listed=False)
    entry = {**SIGNED.manifest.descriptor(), "annotations": {rs.REF_NAME: "1.0.0"}}
    # 6 levels, each index listing the next one 40 times: 40**6 paths, 7 distinct blobs
    level = _index_blob(writer.root, [entry])
    for _ in range(6):
        level = _index_blob(writer.root, [level] * 40)
    _write_index(writer.root, [level] * 40)
    assert (writer.root / "index.json").stat().st_size < 100_000
    layout = OCILayout(writer.root)
    assert layout.select(LocalImage(writer.root)) == DIGEST
    assert set(layout.reads.values()) == {1}  # every blob read exactly once
    assert len(layout.reads) == 8  # 7 indexes and the one manifest
    assert [e.digest for e in layout.entries()] == [DIGEST]


def test_nesting_and_descriptor_count_are_bounded(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED, listed=False)
    level = {**SIGNED.manifest.descriptor()}
    for _ in range(12):
        level = _index_blob(writer.root, [level])
    _write_index(writer.root, [level])
    with pytest.raises(LayoutError, match="nested deeper than"):
        OCILayout(writer.root).entries()
    # distinct manifests past the descriptor cap (each listed once): refused, not walked
    many = [{"mediaType": rs.OCI_MANIFEST, "digest": f"sha256:{n:064x}", "size": 2}
            for n in range(10_001)]
    _write_index(writer.root, [_index_blob(writer.root, many)])
    layout = OCILayout(writer.root)
    with pytest.raises(LayoutError, match="more than 10000 manifests"):
        layout.entries()
    assert sum(layout.reads.values()) == 1  # only the index: no blob of the list was opened


def test_deeply_nested_json_in_a_layout_is_a_layout_error(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    deep = b"[" * 100_000 + b"]" * 100_000
    writer.add(SIGNED, listed=False)
    _write_index(writer.root, [{**_blob(writer.root, deep), "mediaType": rs.OCI_INDEX}])
    with pytest.raises(LayoutError, match="nested deeper than 64 levels"):
        OCILayout(writer.root).entries()


def test_local_image_spec_selects_by_name(tmp_path: Path) -> None:
    root = _layout(tmp_path).write()
    assert LocalImage.parse(f"{root}:1.0.0") == LocalImage(root, name="1.0.0")
    full = "localhost:5000/charts/demo:1.0.0"
    assert LocalImage.parse(f"{root}:{full}") == LocalImage(root, name=full)
    assert LocalImage.parse(str(root)) == LocalImage(root)
    with pytest.raises(LayoutError, match="names no image"):
        LocalImage.parse(f"{root}:")


@pytest.mark.parametrize(("name", "tag"), [
    ("1.0.0", "1.0.0"), ("localhost:5000/charts/demo:1.0.0", "1.0.0"),
    ("ghcr.io/org/demo:sha256-ab.sig", "sha256-ab.sig"),
    (f"ghcr.io/org/demo@{DIGEST}", None), ("localhost:5000/charts/demo", None)])
def test_tag_of_a_ref_name(name: str, tag: str | None, tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED, annotations={rs.REF_NAME: name})
    layout = OCILayout(writer.write())
    (entry,) = layout.entries()
    assert entry.tagged(tag) if tag else not any(entry.tagged(t) for t in ("1.0.0", "latest"))
    assert entry.named(name)


def test_cosign_attachments_are_not_images_unless_they_are_charts(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED, annotations={rs.REF_NAME: "registry.example/charts/demo:1.0.0"})
    sbom = rs.Artifact(rs.Blob(json.dumps({
        "schemaVersion": 2, "mediaType": rs.OCI_MANIFEST,
        "config": {"mediaType": rs.OCI_CONFIG, "digest": "sha256:" + "2" * 64, "size": 2},
        "layers": [{"mediaType": "text/spdx+json", "digest": "sha256:" + "3" * 64,
                    "size": 2}]}).encode(), rs.OCI_MANIFEST))
    tag = f"registry.example/charts/demo:{rs.referrers_tag(DIGEST)}.sbom"
    writer.add(sbom, annotations={rs.REF_NAME: tag})
    root = writer.write()
    assert OCILayout(root).select(LocalImage(root)) == DIGEST
    # a chart named like an attachment is still an image: both are listed, none is chosen
    writer.add(rs.Artifact(rs.Blob(SIGNED.manifest.data + b" ", rs.OCI_MANIFEST)),
               annotations={rs.REF_NAME: f"{rs.referrers_tag(DIGEST)}.sig"})
    root = writer.write()
    with pytest.raises(LayoutError, match="holds 2 images"):
        OCILayout(root).select(LocalImage(root))


def test_odd_json_values_in_a_manifest_are_handled_not_crashed_on(tmp_path: Path) -> None:
    writer = _layout(tmp_path)
    writer.add(SIGNED)
    odd = rs.Artifact(rs.Blob(json.dumps({
        "schemaVersion": 2, "mediaType": rs.OCI_MANIFEST, "artifactType": ["x"],
        "subject": {"digest": {"not": "a string"}},
        "layers": [{"mediaType": {"a": 1}}, 5]}).encode(), rs.OCI_MANIFEST))
    writer.add(odd)
    root = writer.write()
    with pytest.raises(LayoutError, match="holds 2 images"):
        OCILayout(root).select(LocalImage(root))
    assert read_layout_signatures(LocalImage(root, DIGEST)).referrers == ()
