"""An HTTP(S) Helm repository (HelmRepository ``type: default``): its index, and chart archives.

What it does as Helm's HTTP getter and source-controller do, and where it is stricter:

- the index is ``<url>/index.yaml``; a chart's URL in the index is taken as is when absolute,
  else resolved against the repository URL as a directory (Helm 4's ``ResolveReferenceURL``,
  the repository URL's query kept);
- basic auth (and a TLS client certificate) goes to the repository's own origin (scheme, host
  and port, as Helm compares them); to another host only when ``pass_credentials`` is set
  (``spec.passCredentials``), and never to where a redirect leads off the repository's origin;
- a CA from the Secrets is trusted besides the system's (Flux: ``WithSystemCertPool``);
- the index is asked for conditionally (``If-None-Match``/``If-Modified-Since``) with the
  validators of the last answer, so an unchanged index costs a 304 and no bytes;
- sizes are capped while reading: the index at :data:`~chartguard.oci.helmindex.MAX_INDEX_BYTES`,
  a chart at ``Limits.max_layer_bytes`` (Flux's ``MaxChartSize``, 10 MiB);
- a chart is checked before anyone sees it: the sha256 the index entry gives (``digest``, which
  ``helm repo index`` writes) must match, and the archive must pass the same checks an OCI
  chart layer passes (:func:`chartguard.oci.chart.archive_metadata`), naming the chart and
  version the index entry names;
- the whole fetch (retries and redirects included) ends within ``timeout`` (``spec.timeout``).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
import time
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from chartguard.oci._metered import MeteredTransport
from chartguard.oci._requests_transport import (
    RequestsTransport,
    system_ca_bundle,
    write_private,
)
from chartguard.oci._retry import Backoff
from chartguard.oci._transport import deadline_error, read_limited
from chartguard.oci.chart import MAX_PROVENANCE_BYTES, archive_metadata
from chartguard.oci.credentials import RegistryCredentials, TLSConfig, tls_from_secret
from chartguard.oci.errors import (
    AuthenticationError,
    ChartContentError,
    ConnectionBrokenError,
    CredentialsError,
    DigestMismatchError,
    Hint,
    OCIError,
    RegistryResponseError,
    RegistryUnreachableError,
    TLSVerificationError,
)
from chartguard.oci.helmindex import MAX_INDEX_BYTES, IndexEntry, digest_is_valid
from chartguard.oci.limits import Limits
from chartguard.oci.transport import (
    ConnectError,
    Deadline,
    Request,
    Response,
    TLSError,
    Transport,
    TransportError,
)
from chartguard.untrusted import escape, without_credentials

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 10  # Go's http.Client default
_STATUS_TEXT = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
                500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass(frozen=True)
class IndexDownload:
    """An answer to an index request: the bytes (``changed``) or "not modified" (a 304)."""

    changed: bool
    data: bytes = b""
    digest: str = ""
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class ChartDownload:
    """A chart archive downloaded and checked."""

    data: bytes
    name: str
    version: str
    url: str  # where it came from (credentials stripped)
    #: the archive's file name: the last part of its URL's path, as helm names the download
    file_name: str = ""
    #: ``<chart url>.prov`` when it was asked for; None when the repository has none (404)
    provenance: bytes | None = None

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()


#: Secret keys of TLS material, with the legacy names Flux still reads (fluxcd/pkg secrets)
_TLS_KEYS = (("tls.crt", "certFile"), ("tls.key", "keyFile"), ("ca.crt", "caFile"))


def _tls_data(data: Mapping[str, bytes]) -> tuple[bytes | None, ...]:
    return tuple(data.get(key) or data.get(legacy) or None for key, legacy in _TLS_KEYS)


def repository_auth(secret: Mapping[str, bytes] | None, cert_secret: Mapping[str, bytes] | None,
                    ) -> tuple[RegistryCredentials | None, TLSConfig | None, bool]:
    """Basic auth and TLS material of an HTTP repository, read as source-controller's
    ``GetClientOpts`` reads them: ``username``/``password`` from ``secretRef``; TLS
    (``tls.crt``/``tls.key``/``ca.crt``, or ``certFile``/``keyFile``/``caFile``) from
    ``certSecretRef``, else (deprecated) from ``secretRef``. The third value is True when the
    TLS material came from ``secretRef``. ``CredentialsError`` saying what is wrong."""
    credentials: RegistryCredentials | None = None
    tls: TLSConfig | None = None
    deprecated = False
    if cert_secret is not None:
        cert, key, ca = _tls_data(cert_secret)
        if not (cert and key) and not ca:
            if cert or key:
                raise CredentialsError(
                    "failed to construct Helm client's TLS config: the Secret has "
                    f"{'tls.crt but no tls.key' if cert else 'tls.key but no tls.crt'}")
            raise CredentialsError(
                "failed to construct Helm client's TLS config: the Secret holds neither a "
                "certificate pair (tls.crt, tls.key) nor a CA (ca.crt)")
        tls = tls_from_secret({k: v for k, v in
                               (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)) if v})
    if secret is not None:
        username, password = secret.get("username"), secret.get("password")
        if username is not None or password is not None:
            if not username or not password:
                raise CredentialsError(
                    "the Secret must have both 'username' and 'password' keys, non-empty: add "
                    "the missing one")
            try:
                credentials = RegistryCredentials(username.decode(), password.decode())
            except UnicodeDecodeError:
                raise CredentialsError("the Secret's 'username' or 'password' is not UTF-8 "
                                       "text") from None
        cert, key, ca = _tls_data(secret)
        if tls is None and (cert or key or ca):
            if bool(cert) != bool(key):
                raise CredentialsError(
                    "TLS client authentication needs both tls.crt and tls.key: add the "
                    "missing one to the Secret, or remove the other")
            tls = tls_from_secret({k: v for k, v in
                                   (("tls.crt", cert), ("tls.key", key), ("ca.crt", ca)) if v})
            deprecated = True
    return credentials, tls, deprecated


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lower-cased, the default port dropped (Helm
    compares scheme and ``URL.Host``)."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return f"{parts.scheme.lower()}://{host}" + (f":{port}" if port and port != default else "")


def unambiguous(url: str) -> bool:
    """Whether the HTTP client connects to the origin :func:`origin` reads from ``url``.

    Python's ``urlsplit`` and urllib3 (which connects) disagree on some URLs: with a
    backslash, ``https://evil.example\\@repo.example/c.tgz`` is ``repo.example`` to the
    one and ``evil.example`` to the other, so credentials meant for the repository would
    reach another host. Such a URL (or one with whitespace or control characters) is
    refused rather than guessed at."""
    if any(ch == "\\" or ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return False
    try:
        connected = parse_url(url)
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except (LocationParseError, ValueError):
        return False
    host = (parts.hostname or "").lower()
    theirs = (connected.host or "").lower().strip("[]")
    return ((connected.scheme or "").lower() == parts.scheme.lower() and theirs == host
            and connected.port == port)


def index_url(repository_url: str) -> str:
    """``<url>/index.yaml`` (source-controller's ``DownloadIndex``: the path joined)."""
    parts = urllib.parse.urlsplit(repository_url)
    path = parts.path.rstrip("/") + "/index.yaml"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def chart_url(repository_url: str, ref: str) -> str:
    """Helm 4's ``ResolveReferenceURL``: ``ref`` as is when absolute, else relative to the
    repository URL taken as a directory, with the repository URL's query."""
    if urllib.parse.urlsplit(ref).scheme:
        return ref
    base = urllib.parse.urlsplit(repository_url)
    directory = urllib.parse.urlunsplit(
        (base.scheme, base.netloc, base.path.rstrip("/") + "/", "", ""))
    resolved = urllib.parse.urlsplit(urllib.parse.urljoin(directory, ref))
    # the query may carry a token (a SAS, a private_token): it goes with the URL only to the
    # repository's own origin, never to the host a scheme-relative ``//other/c.tgz`` names
    query = base.query if origin(resolved.geturl()) == origin(repository_url) else ""
    return urllib.parse.urlunsplit((resolved.scheme, resolved.netloc, resolved.path,
                                    query, ""))


def shown(url: str) -> str:
    """A URL as a message quotes it: no password, escaped."""
    return escape(without_credentials(url), 300)


class HelmRepositoryClient:
    """One HTTP(S) Helm repository with its credentials and TLS material (from Secrets only).

    ``timeout`` bounds each operation whole; ``transport`` replaces the HTTP layer in tests.
    Thread safety: one client serves concurrent reconciles (requests' session pools).
    """

    def __init__(self, url: str, *, credentials: RegistryCredentials | None = None,
                 tls: TLSConfig | None = None, pass_credentials: bool = False,
                 timeout: float = 60.0, retries: int = 2, limits: Limits | None = None,
                 max_index_bytes: int = MAX_INDEX_BYTES, transport: Transport | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._origin = origin(url)
        self._credentials = credentials
        self._pass_credentials = pass_credentials
        self.timeout = timeout
        self._retries = max(0, retries)
        self._limits = limits or Limits()
        self._max_index = max_index_bytes
        self._sleep = sleep
        self._clock = clock
        self._backoff = Backoff()
        self._tmp: Path | None = None
        verify: bool | str = True
        cert: tuple[str, str] | None = None
        if transport is None and tls is not None and (tls.ca_pem or tls.cert_pem):
            self._tmp = Path(tempfile.mkdtemp(prefix="chartguard-helmrepo-tls-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._tmp, True)
            if tls.ca_pem:
                # the system's CAs and the Secret's, as Flux (WithSystemCertPool)
                verify = str(self._write("ca.crt", system_ca_bundle() + b"\n" + tls.ca_pem))
            if tls.cert_pem and tls.key_pem:
                cert = (str(self._write("tls.crt", tls.cert_pem)),
                        str(self._write("tls.key", tls.key_pem)))
        inner: Transport = transport if transport is not None else RequestsTransport(
            verify=verify, foreign_verify=verify, cert=cert)
        self._http = MeteredTransport(inner)

    def _write(self, name: str, data: bytes) -> Path:
        assert self._tmp is not None
        return write_private(self._tmp, name, data)

    def close(self) -> None:
        self._http.close()
        if self._tmp is not None:
            self._cleanup()

    # -- index ---------------------------------------------------------------------------

    def fetch_index(self, *, etag: str = "", last_modified: str = "") -> IndexDownload:
        """``<url>/index.yaml``; with the validators of the last answer, a 304 gives
        ``changed=False`` and no bytes."""
        url = index_url(self.url)
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        status, answer, data = self._download(url, headers, self._max_index,
                                              f"the index {shown(url)}", send_credentials=True)
        if status == 304:
            return IndexDownload(changed=False, etag=etag, last_modified=last_modified)
        tag = answer.get("ETag", "")
        modified = answer.get("Last-Modified", "")
        return IndexDownload(changed=True, data=data,
                             digest="sha256:" + hashlib.sha256(data).hexdigest(),
                             etag=tag if len(tag) <= 512 else "",
                             last_modified=modified if len(modified) <= 128 else "")

    # -- charts --------------------------------------------------------------------------

    def fetch_chart(self, entry: IndexEntry, *, provenance: bool = False) -> ChartDownload:
        """The archive of ``entry``, checked (digest, size, archive entries, name and
        version); the first of its ``urls``, as Helm takes. With ``provenance``, also the
        ``.prov`` beside it (helm's ``<chart url>.prov``; None when it answers 404)."""
        if not entry.urls:
            raise ChartContentError(f"chart '{escape(entry.name)}' has no downloadable URLs")
        url = chart_url(self.url, entry.urls[0])
        if not unambiguous(url):
            raise ChartContentError(
                f"chart '{escape(entry.name)}' version {escape(entry.version)} has URL "
                f"{shown(url)}, which HTTP clients read in different ways (a backslash, "
                "whitespace or a malformed host): it is not downloaded; fix the index")
        if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
            raise ChartContentError(
                f"chart '{escape(entry.name)}' version {escape(entry.version)} has URL "
                f"{shown(url)}, which is not http(s): chartguard downloads charts over HTTP(S)")
        if entry.digest and not digest_is_valid(entry.digest):
            raise ChartContentError(
                f"the index gives chart '{escape(entry.name)}' version "
                f"{escape(entry.version)} the digest {escape(entry.digest, 100)!r}, which is "
                "not a sha256 digest: regenerate the index with `helm repo index`")
        where = f"chart {shown(url)}"
        _, _, data = self._download(url, {}, self._limits.max_layer_bytes, where,
                                    send_credentials=self.sends_credentials_to(url))
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if entry.digest and actual != entry.digest:
            raise DigestMismatchError(
                f"{where} has sha256 {actual}, not the digest {entry.digest} the index gives "
                "(digest mismatch): the bytes were altered or the index is stale; they are "
                "not used")
        name, version = archive_metadata(data, where)
        if name != entry.name or version != entry.version:
            raise ChartContentError(
                f"{where} is chart {escape(name)} {escape(version)}, but the index names it "
                f"{escape(entry.name)} {escape(entry.version)}: regenerate the index with "
                "`helm repo index`")
        parts = urllib.parse.urlsplit(url)
        file_name = parts.path.rsplit("/", 1)[-1]
        prov: bytes | None = None
        if provenance:
            prov_url = urllib.parse.urlunsplit(parts._replace(path=parts.path + ".prov"))
            status, _, prov = self._download(
                prov_url, {}, MAX_PROVENANCE_BYTES, f"provenance {shown(prov_url)}",
                send_credentials=self.sends_credentials_to(prov_url), missing_ok=True)
            if status == 404:
                prov = None
        return ChartDownload(data=data, name=name, version=version,
                             url=without_credentials(url),
                             file_name=urllib.parse.unquote(file_name), provenance=prov)

    def sends_credentials_to(self, url: str) -> bool:
        """Helm's rule: the repository's own origin, or any with ``pass_credentials``."""
        return self._pass_credentials or origin(url) == self._origin

    # -- exchanges -----------------------------------------------------------------------

    def _download(self, url: str, headers: dict[str, str], limit: int, what: str, *,
                  send_credentials: bool,
                  missing_ok: bool = False) -> tuple[int, Mapping[str, str], bytes]:
        """A GET's status (200 or 304; 404 with ``missing_ok``), headers and body (capped); a
        connection that breaks while the body is read is tried again within the retries and
        the deadline."""
        deadline = Deadline(self.timeout, self._clock)
        attempt = 0
        while True:
            response = self._request(url, headers, deadline,
                                     send_credentials=send_credentials, missing_ok=missing_ok)
            status, answer = response.status_code, response.headers
            if status in (304, 404):
                response.close()
                return status, answer, b""
            try:
                return status, answer, read_limited(response, limit, what, deadline=deadline)
            except ConnectionBrokenError:
                if attempt >= self._retries or not self._pause(attempt, deadline):
                    raise
            attempt += 1

    def _request(self, url: str, headers: dict[str, str], deadline: Deadline, *,
                 send_credentials: bool, missing_ok: bool = False) -> Response:
        """GET ``url`` (following redirects, retrying what may heal) until an answer that is
        200 or 304; any other answer raises."""
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._follow(url, headers, deadline, send_credentials)
            except RegistryUnreachableError:
                if last or not self._pause(attempt, deadline):
                    raise
                continue
            if response.status_code in (200, 304) or (missing_ok
                                                       and response.status_code == 404):
                return response
            if response.status_code in _RETRY_STATUSES and not last and self._pause(
                    attempt, deadline):
                response.close()
                continue
            raise self._status_error(response, url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _pause(self, attempt: int, deadline: Deadline) -> bool:
        wait = self._backoff.delay(attempt)
        if deadline.remaining() - wait < 0.5:
            return False
        self._sleep(wait)
        return True

    def _follow(self, url: str, headers: dict[str, str], deadline: Deadline,
                send_credentials: bool) -> Response:
        first = True
        for _ in range(_MAX_REDIRECTS + 1):
            own = origin(url) == self._origin
            # a redirect off the repository's origin gets no credentials (Go's client drops
            # Authorization there too); the first request follows Helm's rule
            credentials = send_credentials if first else own
            sent = dict(headers)
            if credentials and self._credentials is not None:
                token = base64.b64encode(
                    f"{self._credentials.username}:{self._credentials.password}".encode()
                ).decode()
                sent["Authorization"] = f"Basic {token}"
            response = self._exchange(Request("GET", url, sent, registry=credentials),
                                      deadline)
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            response.close()
            url = urllib.parse.urljoin(url, location)
            if not unambiguous(url):
                raise RegistryResponseError(
                    f"the Helm repository redirected to {shown(url)}, which HTTP clients "
                    "read in different ways (a backslash, whitespace or a malformed host): "
                    "not followed")
            if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
                raise RegistryResponseError(
                    f"the Helm repository redirected to {shown(origin(url))}, which is not "
                    "HTTP(S)")
            first = False
        raise RegistryResponseError(
            f"the Helm repository redirected more than {_MAX_REDIRECTS} times (a redirect "
            f"loop) at {shown(url)}")

    def _exchange(self, request: Request, deadline: Deadline) -> Response:
        if deadline.expired():
            raise deadline_error(f"GET {shown(request.url)}", deadline)
        try:
            return self._http.send(request, timeout=deadline.cap(self.timeout),
                                   deadline=deadline)
        except TLSError as err:
            hints = ((Hint.CLIENT_CERTIFICATE,) if err.client_certificate_refused
                     else (Hint.CA_CERTIFICATE,))
            raise TLSVerificationError(
                f"TLS handshake with {shown(origin(request.url))} failed ({escape(err.reason)})",
                hints=hints) from None
        except ConnectError as err:
            if deadline.expired() or err.timed_out:
                raise deadline_error(f"GET {shown(request.url)}", deadline) from None
            raise RegistryUnreachableError(
                f"GET {shown(request.url)}: {escape(err)}") from None
        except TransportError as err:
            raise RegistryUnreachableError(
                f"GET {shown(request.url)}: {escape(err)}") from None

    def _status_error(self, response: Response, url: str) -> OCIError:
        code = response.status_code
        response.close()
        text = f"failed to fetch {shown(url)} : {code} {_STATUS_TEXT.get(code, '')}".rstrip()
        if code in (401, 403):
            return AuthenticationError(text, hints=(Hint.CREDENTIALS,))
        if code in _RETRY_STATUSES:
            return RegistryUnreachableError(text)
        return RegistryResponseError(text)
