"""oras' Registry with a request loop we can trust: bounded retries, our auth, our errors.

oras 0.2.43 is used for what it does right (its requests session, blob download, tag
pagination over ``Link`` headers) and wrapped against its traps (DESIGN.md §5):

- its ``do_request`` retries every exception with sleeps of 3+5+11+29+83 s: replaced here by
  a bounded loop (``retries`` attempts, sub-second backoff) that retries only what may heal
  (refused/timed-out connections, 429 and 5xx answers);
- its auth backends read ~/.docker/config.json and ORAS_USER/ORAS_PASS and mishandle Basic
  registries: replaced by :class:`_NoImplicitAuth` and our own answer to the registry's
  ``WWW-Authenticate`` challenge (Basic, or the Bearer token flow, anonymous or with the
  credentials passed in);
- ``REQUESTS_CA_BUNDLE`` makes requests ignore a session's ``verify``: ours is passed on
  every request;
- requests adds ~/.netrc credentials to any request without auth, and again after every
  redirect: the session gets a no-op auth and redirects are followed here, so the
  Authorization header goes to the registry's own origin only (blob GETs redirected to
  storage on another host get no credentials and the system's CA trust).

Every response is streamed so callers can cap sizes before reading a body.
"""

from __future__ import annotations

import base64
import json as jsonlib
import logging
import re
import time
import urllib.parse
from typing import Any

import oras.auth.base
import oras.container
import oras.provider
import requests

from chartguard import __version__
from chartguard.oci.credentials import RegistryCredentials
from chartguard.oci.errors import (
    AuthenticationError,
    DigestMismatchError,
    OCIError,
    RegistryResponseError,
    RegistryUnreachableError,
    SizeLimitExceededError,
    TLSVerificationError,
    VersionNotFoundError,
)

log = logging.getLogger(__name__)

# Answers that may heal by themselves; anything else is returned to the caller at once.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_BACKOFF = 0.2  # seconds, doubled per attempt: 0.2, 0.4, 0.8 ...
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_REPOSITORY_IN_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")


class _NoImplicitAuth(oras.auth.base.AuthBackend):  # type: ignore[misc]
    """An oras auth backend that knows nothing: no ~/.docker, no ORAS_USER, no helpers."""

    def load_configs(self, *_args: Any, **_kwargs: Any) -> None:
        return None

    def get_auth_header(self) -> dict[str, str]:
        return {}

    def authenticate_request(self, *_args: Any, **_kwargs: Any) -> tuple[dict[str, str], bool]:
        return {}, False


class _NoNetrc(requests.auth.AuthBase):
    """Session auth that adds nothing: its presence stops requests reading ~/.netrc."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v[1:-1].replace('\\"', '"') if v.startswith('"') else v
              for k, v in _CHALLENGE_PARAM.findall(rest)}
    return scheme.lower(), params


def container(host: str, repository: str, tag: str | None = None) -> oras.container.Container:
    """An oras Container for ``host/repository`` (set outright: oras guesses registries)."""
    c = oras.container.Container(f"{host}/{repository}" + (f":{tag}" if tag else ""))
    c.registry = host
    namespace, _, name = repository.rpartition("/")
    c.namespace = namespace or None
    c.repository = name
    return c


def read_limited(response: requests.Response, limit: int, what: str,
                 expected: int | None = None) -> bytes:
    """The body of a streamed response, refused as soon as it exceeds ``limit`` bytes.

    With ``expected`` (the size a descriptor gives), more bytes than that are refused too,
    as soon as the Content-Length or the stream shows them.
    """
    try:
        try:
            length = int(response.headers.get("Content-Length", "-1"))
        except ValueError:
            length = -1
        if length > limit:
            raise SizeLimitExceededError(
                f"{what} is {length} bytes, over the limit of {limit} bytes: raise the limit "
                "if this is expected, or check what was pushed")
        if expected is not None and length > expected:
            raise _oversize(what, length, expected)
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise SizeLimitExceededError(
                    f"{what} is more than {limit} bytes (the limit): raise the limit if this "
                    "is expected, or check what was pushed")
            if expected is not None and total > expected:
                raise _oversize(what, total, expected)
            chunks.append(chunk)
        return b"".join(chunks)
    except requests.RequestException as err:
        raise RegistryUnreachableError(
            f"reading {what} failed ({type(err).__name__}): the connection to the registry "
            "broke; try again (the operator retries by itself)") from None
    finally:
        response.close()


def _oversize(what: str, seen: int, expected: int) -> DigestMismatchError:
    return DigestMismatchError(
        f"{what} is {seen} bytes or more but its descriptor says {expected}: the registry "
        "serves other bytes than the manifest names; they are not used. Push it again")


class Transport(oras.provider.Registry):  # type: ignore[misc]
    """One registry host, over oras' session, with bounded retries and our own auth."""

    def __init__(self, host: str, *, plain_http: bool, verify: bool | str,
                 cert: tuple[str, str] | None, credentials: RegistryCredentials | None,
                 timeout: float, retries: int, foreign_verify: bool | str = True) -> None:
        super().__init__(hostname=host, insecure=plain_http, tls_verify=verify,
                         auth_backend="basic")
        self.auth = _NoImplicitAuth()
        self.host = host
        self._verify = verify
        self._foreign_verify = foreign_verify  # for other hosts (redirects, token realm)
        self._cert = cert
        self._credentials = credentials
        self._timeout = timeout
        self._retries = max(0, retries)
        self._scheme: str | None = None  # "basic" or "bearer" once the registry asked
        self._tokens: dict[str, str] = {}  # bearer tokens by repository
        self._session: requests.Session = self.session  # typed view of oras' session
        self._session.headers["User-Agent"] = f"chartguard/{__version__}"
        self._session.auth = _NoNetrc()

    def url(self, path: str) -> str:
        return f"{self.prefix}://{self.host}{path}"

    # -- oras hooks --------------------------------------------------------------------

    def do_request(self, url: str, method: str = "GET", data: Any = None,
                   headers: dict[str, str] | None = None, json: Any = None,
                   stream: bool = False) -> requests.Response:
        """oras' request entry point, replaced: bounded retries, auth, typed errors.

        ``stream`` is ignored: every response is streamed so bodies can be capped.
        """
        del stream
        repository = _repository_of(url)
        base_headers = dict(headers or {})
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            try:
                response = self._send(method, url, base_headers, repository, data, json)
                # only the registry's own challenge is answered: a host it redirected to
                # (storage) must not choose where our credentials go
                if response.status_code == 401 and _origin(response.url) == _origin(url):
                    response = self._authenticate_and_resend(
                        response, method, url, base_headers, repository, data, json)
            except RegistryUnreachableError:
                if last:
                    raise
                self._sleep(attempt)
                continue
            if response.status_code in _RETRY_STATUSES and not last:
                log.debug("%s %s answered %s; retrying", method, _path(url),
                          response.status_code)
                response.close()
                self._sleep(attempt)
                continue
            return response
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _check_200_response(self, response: requests.Response) -> None:
        # oras' paginated tag listing calls this; raise our typed error instead of ValueError
        if response.status_code in (200, 201, 202):
            return
        where = f"{self.host}/{_repository_of(response.url) or '?'}"
        if response.status_code == 404:
            response.close()
            raise VersionNotFoundError(
                f"repository {where} does not exist (no tags): check the chart name and the "
                "repository URL, or push the chart")
        raise status_error(response, f"the tag list of {where}")

    # -- internals ---------------------------------------------------------------------

    def _sleep(self, attempt: int) -> None:
        time.sleep(min(_BACKOFF * 2 ** attempt, 2.0))

    def _send(self, method: str, url: str, headers: dict[str, str], repository: str | None,
              data: Any, json: Any) -> requests.Response:
        """One request to this registry, following its redirects (credentials stay home)."""
        home = f"{self.prefix}://{self.host}"
        if _origin(url) != home:
            # e.g. a Link header naming another host, or http:// for an https registry: our
            # credentials and TLS settings are for this origin only
            raise RegistryResponseError(
                f"registry {self.host} pointed chartguard at another host or scheme "
                f"({_origin(url)}, not {home}): refused; check the registry")
        sent = dict(headers)
        authorization = self._authorization(repository)
        if authorization:
            sent["Authorization"] = authorization
        for _ in range(_MAX_REDIRECTS + 1):
            own = _origin(url) == home
            response = self._request(method, url, sent if own else dict(headers), data, json,
                                     own=own)
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                break
            # blob GETs are commonly redirected to storage (S3, GCS, a CDN) on another host
            response.close()
            url = urllib.parse.urljoin(url, location)
            if response.status_code == 303 and method != "HEAD":
                method, data, json = "GET", None, None
        else:
            raise RegistryResponseError(
                f"registry {self.host} redirected {_path(url)} more than {_MAX_REDIRECTS} "
                "times: check the registry")
        if (own and self.prefix == "http" and response.status_code == 400
                and "Docker-Distribution-Api-Version" not in response.headers
                and self._speaks_https_only(response)):
            raise RegistryResponseError(
                f"registry {self.host} serves HTTPS, not plain HTTP: remove insecure: true / "
                "--plain-http (and give its CA if it is private)")
        return response

    def _request(self, method: str, url: str, headers: dict[str, str], data: Any, json: Any,
                 *, own: bool) -> requests.Response:
        """One HTTP exchange, no redirects followed; requests' errors become ours.

        ``own``: the registry's origin (its CA and client certificate); otherwise the
        system's CA trust plus the registry's CA, and no client certificate.
        """
        where = f"registry {self.host}" if own else (
            f"{_host_of(url)} (where registry {self.host} redirected to)")
        try:
            # verify= and cert= on each request: REQUESTS_CA_BUNDLE would override the session
            return self._session.request(
                method, url, data=data, json=json, headers=headers, stream=True,
                verify=self._verify if own else self._foreign_verify,
                cert=self._cert if own else None, timeout=(self._timeout, self._timeout),
                allow_redirects=False)
        except requests.exceptions.SSLError as err:
            reason = _ssl_reason(err)
            if own and reason in _CLIENT_CERT_REFUSED:
                raise TLSVerificationError(
                    f"registry {self.host} refused the TLS client ({reason}): it wants a client "
                    "certificate its CA signed; put tls.crt and tls.key in the certSecretRef "
                    "Secret (--cert-file/--key-file)") from None
            raise TLSVerificationError(
                f"TLS with {where} failed ({reason}): give the CA that "
                "signed its certificate (certSecretRef ca.crt / --ca-file), or use plain HTTP "
                "(insecure: true / --plain-http) if the registry does not serve TLS") from None
        except (requests.ConnectionError, requests.Timeout) as err:
            kind = "timed out" if isinstance(err, requests.Timeout) else "connection failed"
            raise RegistryUnreachableError(
                f"{where} is unreachable ({kind} after {self._retries + 1} "
                f"attempts): check the host and port in the URL and that the registry is up"
            ) from None
        except requests.RequestException as err:
            raise RegistryResponseError(
                f"request to {where} failed ({type(err).__name__}): check the "
                "repository URL") from None

    def _speaks_https_only(self, response: requests.Response) -> bool:
        """Whether a 400 without registry headers is Go's answer to plain HTTP on TLS."""
        response.close()  # consumed here: the caller raises or reports the 400 either way
        try:
            probe = self._session.get(self.url("/v2/"), timeout=(self._timeout, self._timeout),
                                      stream=True, allow_redirects=False)
            head = next(probe.iter_content(256), b"")
            probe.close()
        except requests.RequestException:
            return False
        return b"HTTP request to an HTTPS server" in head

    def _authorization(self, repository: str | None) -> str | None:
        if self._scheme == "basic" and self._credentials:
            return _basic(self._credentials)
        if self._scheme == "bearer":
            token = self._tokens.get(repository or "")
            return f"Bearer {token}" if token else None
        return None

    def _authenticate_and_resend(self, response: requests.Response, method: str, url: str,
                                 headers: dict[str, str], repository: str | None, data: Any,
                                 json: Any) -> requests.Response:
        """Answer the registry's 401 challenge once; a second 401 is an AuthenticationError."""
        challenge = response.headers.get("WWW-Authenticate", "")
        response.close()
        scheme, params = _challenge(challenge)
        who = (f"user {self._credentials.username!r}" if self._credentials
               else "anonymous access")
        if scheme == "basic":
            if not self._credentials:
                raise AuthenticationError(
                    f"registry {self.host} requires credentials: set the HelmRepository's "
                    "secretRef (or --username/--password-stdin)")
            self._scheme = "basic"
        elif scheme == "bearer":
            self._scheme = "bearer"
            self._tokens[repository or ""] = self._fetch_token(params, repository)
        else:
            raise AuthenticationError(
                f"registry {self.host} answered 401 with an authentication scheme chartguard "
                f"does not support ({scheme or 'none'}): use a registry with Basic or Bearer "
                "token authentication")
        retried = self._send(method, url, headers, repository, data, json)
        if retried.status_code == 401:
            retried.close()
            raise AuthenticationError(
                f"registry {self.host} refused {who} for {repository or 'the API'} (401): "
                "check the username and password in the Secret")
        return retried

    def _fetch_token(self, params: dict[str, str], repository: str | None) -> str:
        realm = params.get("realm", "")
        if not realm.startswith(("https://", "http://")):
            raise AuthenticationError(
                f"registry {self.host} asked for a bearer token without a usable realm: "
                "check the registry's token auth configuration")
        query = {}
        if params.get("service"):
            query["service"] = params["service"]
        scope = params.get("scope") or (f"repository:{repository}:pull" if repository else "")
        if scope:
            query["scope"] = scope
        headers = {"Accept": "application/json"}
        if self._credentials:
            if self.prefix == "https" and not realm.startswith("https://"):
                # the password would cross the network in the clear
                raise AuthenticationError(
                    f"registry {self.host} sent its token realm {_origin(realm)} over plain "
                    "HTTP: chartguard does not send the password there; fix the registry's "
                    "token auth configuration (an https:// realm)")
            # a realm on another host is normal (Docker Hub: auth.docker.io); Docker sends
            # the credentials there too
            headers["Authorization"] = _basic(self._credentials)
        own = _origin(realm) == f"{self.prefix}://{self.host}"
        try:
            answer = self._session.get(
                realm, params=query, headers=headers,
                verify=self._verify if own else self._foreign_verify,
                cert=self._cert if own else None, timeout=(self._timeout, self._timeout),
                stream=True, allow_redirects=False)
        except requests.exceptions.SSLError as err:
            raise TLSVerificationError(
                f"TLS with the token service {_host_of(realm)} of registry {self.host} failed "
                f"({_ssl_reason(err)}): give the CA that signed its certificate") from None
        except requests.RequestException:
            raise RegistryUnreachableError(
                f"the token service {_host_of(realm)} of registry {self.host} is "
                "unreachable: check the registry's token realm") from None
        if answer.status_code in (401, 403):
            answer.close()
            who = (f"user {self._credentials.username!r}" if self._credentials
                   else "anonymous access")
            raise AuthenticationError(
                f"the token service of registry {self.host} refused {who} for scope "
                f"{scope!r} ({answer.status_code}): check the username and password in the "
                "Secret")
        if answer.status_code != 200:
            raise status_error(answer, f"the token service of registry {self.host}")
        body = read_limited(answer, 1024 * 1024, f"the token from {_host_of(realm)}")
        try:
            doc = jsonlib.loads(body)
        except ValueError:
            doc = None
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryResponseError(
                f"the token service of registry {self.host} answered without a token: check "
                "the registry's token auth configuration")
        return token


def status_error(response: requests.Response, what: str) -> OCIError:
    """Our error for an unexpected status (the caller handles the statuses it expects)."""
    code = response.status_code
    detail = _registry_error_code(response)
    response.close()
    if code in (401, 403):
        return AuthenticationError(
            f"registry denied access to {what} ({code}{detail}): grant the credentials pull "
            "access to this repository")
    if code in _RETRY_STATUSES:
        return RegistryUnreachableError(
            f"registry failed on {what} ({code}{detail}) after retries: the registry is "
            "unhealthy; it is retried later")
    return RegistryResponseError(
        f"registry answered {code}{detail} for {what}: check the repository URL and that "
        "the registry speaks the OCI distribution API")


def _registry_error_code(response: requests.Response) -> str:
    # distribution error bodies: {"errors":[{"code":"NAME_UNKNOWN",...}]}; codes are safe to show
    try:
        if int(response.headers.get("Content-Length", "0")) > 64 * 1024:
            return ""
        errors = response.json().get("errors") or []
        codes = [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]
        # the registry writes these: keep only what looks like a code (DENIED, NAME_UNKNOWN)
        codes = [c for c in codes if _ERROR_CODE.fullmatch(c)]
    except (ValueError, AttributeError, RuntimeError, requests.RequestException):
        return ""  # no parsable error body (or it was already read): the status says enough
    return f" {','.join(codes[:3])}" if codes else ""


def _basic(credentials: RegistryCredentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _repository_of(url: str) -> str | None:
    m = _REPOSITORY_IN_PATH.match(urllib.parse.urlsplit(url).path)
    return m.group(1) if m else None


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _host_of(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


_CLIENT_CERT_REFUSED = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED",
                                  "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_HANDSHAKE_FAILURE",
                                  "TLSV1_ALERT_UNKNOWN_CA"})


def _ssl_reason(err: Exception) -> str:
    # OpenSSL's reason code (never the whole text: it may carry a URL with a query)
    text = str(err)
    for known in ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", *_CLIENT_CERT_REFUSED,
                  "hostname mismatch", "self-signed certificate",
                  "unable to get local issuer certificate"):
        if known in text:
            return known
    return "handshake failed"

