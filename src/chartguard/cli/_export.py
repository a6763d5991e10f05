"""YAML as ``flux … --export`` and ``kubectl -o yaml`` print it, byte for byte.

Both marshal with sigs.k8s.io/yaml: the object becomes JSON, then go-yaml v2 writes it with
every mapping's keys in go-yaml's order (``sorter.go``: letters compare as runes, a letter sorts
after any other character, runs of digits compare as numbers, so ``a2`` < ``a10``). flux's
``printExport`` then drops ``creationTimestamp: null`` and ``status: {}``, trims the text and
puts ``---`` above it.

An :class:`Ordered` mapping keeps the order it was built in instead: what the blog's ``yq``
edit writes (``verify`` first in ``spec.chart.spec``, ``provider`` first in it) is not sorted.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from chartguard.helm import encode_document


class Ordered(dict[str, Any]):
    """A mapping written in insertion order (the rest of the document is sorted)."""


def _go_key_less(a: str, b: str) -> bool:
    """go-yaml v2's ``keyList.Less`` for two string keys."""
    ar, br = a, b
    for i in range(min(len(ar), len(br))):
        if ar[i] == br[i]:
            continue
        al, bl = ar[i].isalpha(), br[i].isalpha()
        if al and bl:
            return ar[i] < br[i]
        if al or bl:
            return bl
        an = bn = 0
        if ar[i] == "0" or br[i] == "0":
            j = i - 1
            while j >= 0 and ar[j].isdecimal():
                if ar[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(ar) and ar[ai].isdecimal():
            an = an * 10 + ord(ar[ai]) - ord("0")
            ai += 1
        bi = i
        while bi < len(br) and br[bi].isdecimal():
            bn = bn * 10 + ord(br[bi]) - ord("0")
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ar[i] < br[i]
    return len(ar) < len(br)


def _compare(a: Any, b: Any) -> int:
    sa, sb = str(a), str(b)
    if _go_key_less(sa, sb):
        return -1
    return 1 if _go_key_less(sb, sa) else 0


_GO_ORDER = functools.cmp_to_key(_compare)


def go_key_order(mapping: Mapping[Any, Any]) -> list[Any]:
    """The order go-yaml v2 writes ``mapping``'s keys in (insertion order if :class:`Ordered`)."""
    if isinstance(mapping, Ordered):
        return list(mapping)
    return sorted(mapping, key=_GO_ORDER)


def to_yaml(document: Mapping[str, Any]) -> str:
    """``document`` as sigs.k8s.io/yaml's ``Marshal`` writes it (``kubectl get -o yaml``)."""
    return encode_document(document, go_key_order)


def export(document: Mapping[str, Any]) -> str:
    """flux's ``printExport``: ``---``, the YAML without empty metadata/status, a newline."""
    text = to_yaml(document)
    text = text.replace("  creationTimestamp: null\n", "", 1)
    text = text.replace("status: {}\n", "", 1)
    return f"---\n{text.strip()}\n"
