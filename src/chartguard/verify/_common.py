"""Pieces shared by the legacy and bundle paths: rejection reasons, decoding, claims.

Every value read from a payload, an annotation, a certificate or a bundle that a reason quotes
goes through :func:`shown` (or ``chartguard.untrusted.escape``): a reason is one line, whatever
the signed bytes hold.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from chartguard.untrusted import UntrustedInputError, escape, loads_json
from chartguard.verify.model import SIMPLE_SIGNING_TYPE

# Used with fullmatch: `$` would also accept a trailing newline.
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
_IN_TOTO_STATEMENT_TYPES = ("https://in-toto.io/Statement/v0.1", "https://in-toto.io/Statement/v1")


def shown(value: object) -> str:
    """An outside value as a message quotes it: strings in quotes, all of it escaped."""
    return f"'{escape(value)}'" if isinstance(value, str) else escape(repr(value))


class Rejected(Exception):  # noqa: N818 - an outcome, not a programming error
    """One signature did not verify; `lines` are the reasons, already prefixed by source."""

    def __init__(self, *lines: str) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def b64decode(value: Any, what: str) -> bytes:
    """Strict base64 (cosign writes standard, padded base64); Rejected when it is not."""
    if not isinstance(value, str):
        raise Rejected(f"{what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(f"{what} is not valid base64") from None


# Not a ValueError: loads_json turns those into "not valid JSON", this one has its own reason.
class _DuplicateKeyError(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook refusing a key given twice (Python keeps the last one silently)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _DuplicateKeyError(key)
        seen.add(key)
    return dict(pairs)


def json_object(data: bytes | str, what: str) -> dict[str, Any]:
    """Parse a JSON object; invalid JSON and duplicate keys are Rejected.

    A key given twice in signed JSON would make two parsers read two different documents
    from the same signed bytes; sigstore-go's protojson refuses that too. The depth guard of
    ``loads_json`` turns a hostile nesting into a reason, not a RecursionError.
    """
    try:
        parsed = loads_json(data, what=what, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as exc:
        raise Rejected(f"{what} has the key {shown(exc.key)} more than once") from None
    except UntrustedInputError as exc:
        raise Rejected(str(exc)) from None
    if not isinstance(parsed, dict):
        raise Rejected(f"{what} is not a JSON object")
    return parsed


def check_simple_signing_claims(payload: bytes, digest: str) -> None:
    """The payload's critical claims must name `digest` and cosign's signature type."""
    document = json_object(payload, "signed payload")
    critical = document.get("critical")
    if not isinstance(critical, dict):
        raise Rejected("signed payload has no 'critical' section (not a cosign signature)")
    _no_keys_equal_but_for_case(document, critical, critical.get("image"))
    kind = critical.get("type")
    if kind != SIMPLE_SIGNING_TYPE:
        raise Rejected(
            f"signed payload type is {shown(kind)}, not {SIMPLE_SIGNING_TYPE!r} "
            "(not a cosign image signature)"
        )
    image = critical.get("image")
    signed = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if signed != digest:
        raise Rejected(
            f"signed payload is for {escape(signed) if signed else '(no digest)'}, not {digest} "
            "(signature copied from another artifact)"
        )


def _no_keys_equal_but_for_case(*objects: object) -> None:
    """cosign reads these objects into Go structs, whose field names encoding/json matches
    case-insensitively (the last of `docker-manifest-digest` and `Docker-Manifest-Digest`
    wins there, the exact one here): refuse the ambiguity. `optional` is a free map in Go
    (case-sensitive) and is not checked."""
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        seen: set[str] = set()
        for key in obj:
            if key.lower() in seen:
                raise Rejected(f"signed payload has the key {shown(key)} more than once")
            seen.add(key.lower())


def _no_keys_alike(what: str, *objects: object) -> None:
    """An in-toto statement (and each subject) is read by cosign into Go structs, whose field
    names encoding/json matches case-insensitively, and by sigstore-go with protojson, which
    takes a field's proto name besides its JSON name (``predicate_type`` for
    ``predicateType``, ``type`` for ``_type``): two keys that are one field to either would
    make two readers see two statements in the same signed bytes. Refused. (``digest`` is a
    map, its keys are not fields: not checked.)"""
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        seen: dict[str, str] = {}
        for key in obj:
            folded = key.lower().replace("_", "")
            if folded in seen:
                raise Rejected(f"{what} has the keys {shown(seen[folded])} and {shown(key)}, "
                               "one field to Go's and protobuf's JSON readers")
            seen[folded] = key


def check_in_toto_subject(
    payload_type: str, payload: bytes, digest: str, predicate_types: tuple[str, ...],
    *, what: str = "bundle",
) -> dict[str, Any]:
    """A DSSE payload must be an in-toto statement of an accepted predicate type with
    `digest` among its subjects (any of them, as sigstore-go's artifact digest check).

    Returns the statement (for an attestation's policy: read only once its signer is proven).
    `what` names the envelope in reasons ("bundle", "attestation")."""
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise Rejected(f"DSSE payload type is {shown(payload_type)}, not {IN_TOTO_PAYLOAD_TYPE!r}")
    statement = json_object(payload, "in-toto statement")
    subjects = statement.get("subject")
    _no_keys_alike("in-toto statement", statement,
                   *(subjects if isinstance(subjects, list) else ()))
    if statement.get("_type") not in _IN_TOTO_STATEMENT_TYPES:
        raise Rejected(f"in-toto statement type {shown(statement.get('_type'))} is not known")
    predicate_type = statement.get("predicateType")
    if predicate_type not in predicate_types:
        raise Rejected(
            f"{what} predicate type is {shown(predicate_type)}, not "
            f"{' or '.join(map(shown, predicate_types))} (an attestation, not a signature; "
            "accept its type in the policy if it is meant to approve the artifact)"
        )
    algorithm, _, hexdigest = digest.partition(":")
    found: list[str] = []
    for subject in subjects if isinstance(subjects, list) else ():
        digests = subject.get("digest") if isinstance(subject, dict) else None
        if isinstance(digests, dict) and isinstance(digests.get(algorithm), str):
            found.append(f"{algorithm}:{digests[algorithm]}")
    if f"{algorithm}:{hexdigest}" not in found:
        # at most a few subjects named: a statement may list thousands
        names = ", ".join(escape(f) for f in found[:3]) + (", …" if len(found) > 3 else "")
        raise Rejected(
            f"{what} subject is {names or '(no sha256 subject)'}, not {digest} "
            f"({what} made for another artifact)"
        )
    return statement


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a DSSE signature is made over."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def dsse_parts(envelope: dict[str, Any]) -> tuple[str, bytes, list[bytes]]:
    """A DSSE envelope's payload type, payload and signatures, decoded (not verified)."""
    payload_type = envelope.get("payloadType")
    payload = b64decode(envelope.get("payload"), "DSSE payload")
    signatures = envelope.get("signatures")
    if not isinstance(payload_type, str) or not isinstance(signatures, list) or not signatures:
        raise Rejected("DSSE envelope lacks payloadType or signatures")
    return payload_type, payload, [
        b64decode(s.get("sig") if isinstance(s, dict) else None, "DSSE signature")
        for s in signatures]
