"""chartguard.api: the three Flux kinds chartguard serves, as typed immutable models.

Parse with ``HelmRepository.from_object(body)``, ``HelmChart.from_object(body)``,
``HelmRelease.from_object(body)``; every problem in a document is reported at once as an
``InvalidSpecError`` whose entries name the field path. ``implied_helmchart(release)`` builds the
HelmChart a release's ``spec.chart`` implies; ``verify_policy_digest(verify)`` names a verify
policy so a reconciler can tell it is unchanged. Conditions live in ``chartguard.api.conditions``,
status models in ``chartguard.api.status``. This package imports nothing of chartguard's and no
third-party library: everything above builds on it.
"""

from chartguard.api._fields import freeze, thaw
from chartguard.api.constraints import check_version_constraint
from chartguard.api.documents import Resource, parse_resource
from chartguard.api.durations import format_duration, parse_go_duration
from chartguard.api.errors import FieldError, InvalidSpecError
from chartguard.api.helmchart import HelmChart, HelmChartSpec, SourceReference
from chartguard.api.helmrelease import NOT_SUPPORTED_YET, HelmRelease, HelmReleaseSpec
from chartguard.api.helmrepository import HelmRepository, HelmRepositorySpec
from chartguard.api.implied import implied_helmchart
from chartguard.api.meta import LocalObjectReference, ObjectMeta
from chartguard.api.verification import OIDCIdentityMatch, Verification, verify_policy_digest

__all__ = [
    "NOT_SUPPORTED_YET",
    "FieldError",
    "HelmChart",
    "HelmChartSpec",
    "HelmRelease",
    "HelmReleaseSpec",
    "HelmRepository",
    "HelmRepositorySpec",
    "InvalidSpecError",
    "LocalObjectReference",
    "OIDCIdentityMatch",
    "ObjectMeta",
    "Resource",
    "SourceReference",
    "Verification",
    "check_version_constraint",
    "format_duration",
    "freeze",
    "implied_helmchart",
    "parse_go_duration",
    "parse_resource",
    "thaw",
    "verify_policy_digest",
]
