"""Every cap on what a registry or an OCI layout may hand chartguard: one table for both.

The registry client (:mod:`.client`, :mod:`.signatures`) and the layout reader (:mod:`.layout`)
read the same :class:`Limits`, so a manifest, a blob or a listing too large for one is too large
for the other. Time is bounded separately: ``RegistryClient(timeout=, deadline=)``.
"""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Size and count caps; anything larger is refused before (or while) it is read."""

    #: a manifest, an image index or a referrers list
    max_manifest_bytes: int = 4 * MiB
    #: the chart .tgz layer
    max_layer_bytes: int = 10 * MiB
    #: the Helm config blob
    max_config_bytes: int = 1 * MiB
    #: each legacy signature layer or bundle
    max_signature_bytes: int = 4 * MiB
    #: referrers of one digest looked at
    max_referrers: int = 64
    #: layers of one signature manifest looked at (cosign appends one per signing)
    max_signature_layers: int = 64
    #: tags of one repository, over all pages of the tag list
    max_tags: int = 50_000
    #: bytes of one repository's tag list, over all its pages
    max_tag_list_bytes: int = 8 * MiB
    #: pages of one tag list (a registry whose Link headers never end is broken, not big)
    max_tag_pages: int = 1000
    #: a token endpoint's answer
    max_token_bytes: int = 1 * MiB
    #: image indexes nested inside image indexes, followed at most this deep (layouts)
    max_index_depth: int = 3
