"""One registry host: bounded retries, redirects, our own auth, typed errors, a total deadline.

Everything here runs over a :class:`~chartguard.oci.transport.Transport` (one HTTP exchange),
so it is unit-tested with answers from memory. What it does against the traps of ready-made
clients (DESIGN.md §5):

- retries are bounded (``retries`` more attempts, exponential backoff with full jitter, see
  :mod:`._retry`) and only for what may heal (refused/timed-out connections, 429 and 5xx
  answers); a ``Retry-After`` is honoured when it fits, else reported at once, and until it
  passes no request goes to that host at all (:mod:`.holds`); nothing outlives the
  operation's :class:`~chartguard.oci.transport.Deadline`;
- credentials come from the arguments only (never ~/.docker, ~/.netrc or the environment) and
  answer the registry's own ``WWW-Authenticate`` challenge (Basic, or the Bearer token flow,
  anonymous or with the credentials);
- redirects are followed here, so the Authorization header goes to the registry's own origin
  only (blob GETs redirected to storage on another host get no credentials and the system's
  CA trust);
- every JSON document (token answers, error bodies) is parsed with a depth guard.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import urllib.parse
from collections.abc import Callable

from chartguard.oci._retry import (
    MAX_RETRY_AFTER,
    MIN_LEFT,
    RETRY_AFTER_STATUSES,
    Backoff,
    retry_after,
)
from chartguard.oci.credentials import RegistryCredentials
from chartguard.oci.errors import (
    AuthenticationError,
    ConnectionBrokenError,
    DeadlineExceededError,
    DigestMismatchError,
    Hint,
    OCIError,
    RateLimitedError,
    RegistryResponseError,
    RegistryServerError,
    RegistryUnreachableError,
    SizeLimitExceededError,
    TLSVerificationError,
)
from chartguard.oci.holds import Hold, HostHolds
from chartguard.oci.transport import (
    Deadline,
    Request,
    Response,
    TLSError,
    Transport,
    TransportError,
)
from chartguard.untrusted import UntrustedInputError, escape, loads_json

log = logging.getLogger(__name__)

# Answers that may heal by themselves; anything else is returned to the caller at once.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_CHUNK = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_REDIRECTS = 5
_MAX_ERROR_BODY = 64 * 1024
_ERROR_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
_REPOSITORY_IN_PATH = re.compile(r"^/v2/(.+?)/(?:manifests|blobs|tags|referrers)/")


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v[1:-1].replace('\\"', '"') if v.startswith('"') else v
              for k, v in _CHALLENGE_PARAM.findall(rest)}
    return scheme.lower(), params


def deadline_error(what: str, deadline: Deadline) -> DeadlineExceededError:
    return DeadlineExceededError(
        f"{what} did not finish within {deadline.seconds:g} s (the deadline of the "
        "operation): the registry is too slow or stalled; it is retried later",
        deadline=deadline.seconds)


def read_limited(response: Response, limit: int, what: str, expected: int | None = None,
                 deadline: Deadline | None = None) -> bytes:
    """The body of a streamed response, refused as soon as it exceeds ``limit`` bytes.

    With ``expected`` (the size a descriptor gives), more bytes than that are refused too,
    as soon as the Content-Length or the stream shows them. With ``deadline``, reading stops
    when it passes.
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
        for chunk in response.iter_bytes(_CHUNK):
            total += len(chunk)
            if total > limit:
                raise SizeLimitExceededError(
                    f"{what} is more than {limit} bytes (the limit): raise the limit if this "
                    "is expected, or check what was pushed")
            if expected is not None and total > expected:
                raise _oversize(what, total, expected)
            chunks.append(chunk)
            if deadline is not None and deadline.expired():
                raise deadline_error(f"reading {what}", deadline)
        return b"".join(chunks)
    except TransportError as err:
        if deadline is not None and deadline.expired():
            raise deadline_error(f"reading {what}", deadline) from None
        raise ConnectionBrokenError(
            f"reading {what} failed: the connection to the registry broke ({escape(err)}); "
            "try again (the operator retries by itself)") from None
    finally:
        response.close()


def _oversize(what: str, seen: int, expected: int) -> DigestMismatchError:
    return DigestMismatchError(
        f"{what} is {seen} bytes or more but its descriptor says {expected}: the registry "
        "serves other bytes than the manifest names; they are not used. Push it again")


def read_json(response: Response, limit: int, what: str, deadline: Deadline | None,
              ) -> object:
    """A JSON body, capped and depth-guarded; None when it is not JSON at all."""
    body = read_limited(response, limit, what, deadline=deadline)
    try:
        return loads_json(body, what=what)
    except UntrustedInputError as err:
        raise RegistryResponseError(
            f"{err}: the registry answered something that is not the document asked for; "
            "check the registry") from None


class HostSession:
    """One registry host: its scheme, credentials and auth state, over a transport.

    Thread safety: shared by concurrent reconciles; the auth state (scheme and bearer tokens
    by repository) is replaced whole, never half-written.
    """

    def __init__(self, host: str, *, plain_http: bool, transport: Transport,
                 credentials: RegistryCredentials | None, timeout: float, retries: int,
                 max_token_bytes: int, sleep: Callable[[float], None] = time.sleep,
                 backoff: Backoff | None = None,
                 wall_clock: Callable[[], float] = time.time,
                 holds: HostHolds | None = None) -> None:
        self.host = host
        self.prefix = "http" if plain_http else "https"
        self._transport = transport
        self._credentials = credentials
        self._timeout = timeout
        self.retries = max(0, retries)
        self._max_token_bytes = max_token_bytes
        self._sleep = sleep
        self._backoff = backoff or Backoff()
        self._wall_clock = wall_clock  # HTTP-date Retry-After values are wall-clock times
        #: the hosts that asked to wait, shared with the other sessions of the process
        self._holds = holds if holds is not None else HostHolds(wall_clock=wall_clock)
        self._scheme: str | None = None  # "basic" or "bearer" once the registry asked
        self._tokens: dict[str, str] = {}  # bearer tokens by repository

    def url(self, path: str) -> str:
        return f"{self.prefix}://{self.host}{path}"

    def request(self, url: str, method: str = "GET", *, deadline: Deadline,
                headers: dict[str, str] | None = None) -> Response:
        """Send with bounded retries, auth and redirects; the caller reads (or closes) it.

        A retryable status (429, 5xx) still there after the retries is returned for the caller
        to report; a ``Retry-After`` longer than fits raises :class:`RateLimitedError` at once,
        and so does every request to this host until that wait is over (a short rest of it
        is slept), without being sent.
        """
        repository = _repository_of(url)
        base_headers = dict(headers or {})
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            self._honour_hold(deadline)
            try:
                response, final = self._send(method, url, base_headers, repository, deadline)
                # only the registry's own challenge is answered: a host it redirected to
                # (storage) must not choose where our credentials go
                if response.status_code == 401 and _origin(final) == _origin(url):
                    response = self._authenticate_and_resend(
                        response, method, url, base_headers, repository, deadline)
            except DeadlineExceededError:
                raise
            except RegistryUnreachableError:
                if last or not self.pause(attempt, deadline):
                    raise
                continue
            if response.status_code not in _RETRY_STATUSES:
                return response
            wait = self._retry_wait(response, attempt, deadline, f"{method} {_path(url)}")
            if last or wait is None:
                return response
            log.debug("%s %s answered %s; retrying in %.2f s", method, _path(url),
                      response.status_code, wait)
            response.close()
            self._sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def pause(self, attempt: int, deadline: Deadline) -> bool:
        """Sleep the backoff after failed attempt ``attempt`` (0 for the first); False, and no
        sleep, when the wait would leave the operation no time for another try."""
        wait = self._backoff.delay(attempt)
        if deadline.remaining() - wait < MIN_LEFT:
            return False
        self._sleep(wait)
        return True

    def _honour_hold(self, deadline: Deadline) -> None:
        """Wait out this host's hold when the rest of it is short and fits the deadline;
        else raise :class:`RateLimitedError` at once, nothing sent."""
        hold = self._holds.get(self.host)
        if hold is None:
            return
        if hold.left <= MAX_RETRY_AFTER and deadline.remaining() - hold.left >= MIN_LEFT:
            log.debug("registry %s asked to wait: %.2f s left", self.host, hold.left)
            self._sleep(hold.left)
            return
        raise _held(hold)

    def _retry_wait(self, response: Response, attempt: int, deadline: Deadline,
                    request: str) -> float | None:
        """How long to wait before retrying a 429/5xx answer; None when there is no time.

        A ``Retry-After`` holds the host (every session of the process) for that long; one
        that asks for more than :data:`MAX_RETRY_AFTER` or than the deadline leaves raises
        :class:`RateLimitedError` (the answer is consumed)."""
        asked = (retry_after(response.headers, self._wall_clock())
                 if response.status_code in RETRY_AFTER_STATUSES else None)
        left = deadline.remaining()
        if asked is None:
            wait = self._backoff.delay(attempt)
            return wait if left - wait >= MIN_LEFT else None
        code = response.status_code
        self._holds.hold(self.host, asked, status=code)
        if asked <= MAX_RETRY_AFTER and left - asked >= MIN_LEFT:
            return asked
        detail = _registry_error_code(response)
        what = _asked_to_wait(code)
        raise RateLimitedError(
            f"registry {self.host} {what} ({code}{detail}) on {escape(request)}: it asked to "
            f"wait {_seconds(asked)} s (Retry-After), longer than one operation waits "
            f"(at most {MAX_RETRY_AFTER:g} s, {max(left, 0.0):.1f} s left of its "
            f"{deadline.seconds:g} s deadline); it is tried again later", retry_after=asked)

    # -- internals ---------------------------------------------------------------------

    def _send(self, method: str, url: str, headers: dict[str, str], repository: str | None,
              deadline: Deadline) -> tuple[Response, str]:
        """One request to this registry, following its redirects (credentials stay home).

        Returns the answer and the URL that gave it (after redirects)."""
        home = f"{self.prefix}://{self.host}"
        if _origin(url) != home:
            # e.g. a Link header naming another host, or http:// for an https registry: our
            # credentials and TLS settings are for this origin only
            raise RegistryResponseError(
                f"registry {self.host} pointed chartguard at another host or scheme "
                f"({escape(_origin(url))}, not {home}): refused; check the registry")
        sent = dict(headers)
        authorization = self._authorization(repository)
        if authorization:
            sent["Authorization"] = authorization
        for _ in range(_MAX_REDIRECTS + 1):
            own = _origin(url) == home
            response = self._exchange(Request(method, url, sent if own else dict(headers),
                                              registry=own), deadline)
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                break
            # blob GETs are commonly redirected to storage (S3, GCS, a CDN) on another host
            response.close()
            url = urllib.parse.urljoin(url, location)
            if not url.startswith(("https://", "http://")):
                raise RegistryResponseError(
                    f"registry {self.host} redirected to {escape(_origin(url))}, which is not "
                    "HTTP(S): check the registry")
            if response.status_code == 303 and method != "HEAD":
                method = "GET"
        else:
            raise RegistryResponseError(
                f"too many redirects: registry {self.host} redirected {escape(_path(url))} "
                f"more than {_MAX_REDIRECTS} times (a redirect loop): check the registry")
        if (own and self.prefix == "http" and response.status_code == 400
                and "Docker-Distribution-Api-Version" not in response.headers
                and self._speaks_https_only(response, deadline)):
            raise RegistryResponseError(
                f"registry {self.host} serves HTTPS, not plain HTTP: connect with TLS (and "
                "give its CA if it is private)", hints=(Hint.USE_TLS, Hint.CA_CERTIFICATE))
        return response, url

    def _exchange(self, request: Request, deadline: Deadline) -> Response:
        """One HTTP exchange through the transport; its errors become ours."""
        where = f"registry {self.host}" if request.registry else (
            f"{escape(_host_of(request.url))} (where registry {self.host} sent chartguard)")
        if deadline.expired():
            raise deadline_error(f"{request.method} {escape(_path(request.url))} on {where}",
                                 deadline)
        try:
            return self._transport.send(request, timeout=self._timeout, deadline=deadline)
        except TLSError as err:
            if err.client_certificate_refused:
                raise TLSVerificationError(
                    f"registry {self.host} refused the TLS client ({escape(err.reason)}): it "
                    "wants a client certificate (and key) signed by a CA it trusts",
                    hints=(Hint.CLIENT_CERTIFICATE,)) from None
            raise TLSVerificationError(
                f"TLS with {where} failed ({escape(err.reason)}): give the CA that signed its "
                "certificate, or use plain HTTP if the registry does not serve TLS",
                hints=(Hint.CA_CERTIFICATE, Hint.USE_PLAIN_HTTP)) from None
        except TransportError as err:
            if deadline.expired():
                raise deadline_error(
                    f"{request.method} {escape(_path(request.url))} on {where}",
                    deadline) from None
            raise RegistryUnreachableError(
                f"{where} is unreachable ({escape(err)} after {self.retries + 1} attempts): "
                "check the host and port in the URL and that the registry is up") from None

    def _speaks_https_only(self, response: Response, deadline: Deadline) -> bool:
        """Whether a 400 without registry headers is Go's answer to plain HTTP on TLS."""
        response.close()  # consumed here: the caller raises or reports the 400 either way
        try:
            probe = self._transport.send(Request("GET", self.url("/v2/")),
                                         timeout=self._timeout, deadline=deadline)
            try:
                head = next(iter(probe.iter_bytes(256)), b"")
            finally:
                probe.close()
        except TransportError:
            return False
        return b"HTTP request to an HTTPS server" in head

    def _authorization(self, repository: str | None) -> str | None:
        if self._scheme == "basic" and self._credentials:
            return _basic(self._credentials)
        if self._scheme == "bearer":
            token = self._tokens.get(repository or "")
            return f"Bearer {token}" if token else None
        return None

    def _who(self) -> str:
        return (f"user {self._credentials.username!r}" if self._credentials
                else "anonymous access")

    def _authenticate_and_resend(self, response: Response, method: str, url: str,
                                 headers: dict[str, str], repository: str | None,
                                 deadline: Deadline) -> Response:
        """Answer the registry's 401 challenge once; a second 401 is an AuthenticationError."""
        challenge = response.headers.get("WWW-Authenticate", "")
        response.close()
        scheme, params = _challenge(challenge)
        if scheme == "basic":
            if not self._credentials:
                raise AuthenticationError(
                    f"registry {self.host} requires credentials: give a username and "
                    "password", hints=(Hint.CREDENTIALS,))
            self._scheme = "basic"
        elif scheme == "bearer":
            token = self._fetch_token(params, repository, deadline)
            self._tokens = {**self._tokens, repository or "": token}
            self._scheme = "bearer"
        else:
            raise AuthenticationError(
                f"registry {self.host} answered 401 with an authentication scheme chartguard "
                f"does not support ({escape(scheme or 'none', 40)}): use a registry with Basic "
                "or Bearer token authentication")
        retried, _ = self._send(method, url, headers, repository, deadline)
        if retried.status_code == 401:
            retried.close()
            raise AuthenticationError(
                f"registry {self.host} refused {self._who()} for {repository or 'the API'} "
                "(401): check the username and password", hints=(Hint.CREDENTIALS,))
        return retried

    def _fetch_token(self, params: dict[str, str], repository: str | None,
                     deadline: Deadline) -> str:
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
                    f"registry {self.host} sent its token realm {escape(_origin(realm))} over "
                    "plain HTTP: chartguard does not send the password there; fix the "
                    "registry's token auth configuration (an https:// realm)")
            # a realm on another host is normal (Docker Hub: auth.docker.io); Docker sends
            # the credentials there too
            headers["Authorization"] = _basic(self._credentials)
        sep = "&" if urllib.parse.urlsplit(realm).query else "?"
        url = realm + (sep + urllib.parse.urlencode(query) if query else "")
        own = _origin(realm) == f"{self.prefix}://{self.host}"
        service = f"the token service {escape(_host_of(realm))} of registry {self.host}"
        try:
            answer = self._transport.send(Request("GET", url, headers, registry=own),
                                          timeout=self._timeout, deadline=deadline)
        except TLSError as err:
            raise TLSVerificationError(
                f"TLS with {service} failed ({escape(err.reason)}): give the CA that signed "
                "its certificate", hints=(Hint.CA_CERTIFICATE,)) from None
        except TransportError:
            if deadline.expired():
                raise deadline_error(f"the token exchange with {service}", deadline) from None
            raise RegistryUnreachableError(
                f"{service} is unreachable: check the registry's token realm") from None
        if answer.status_code in (401, 403):
            answer.close()
            raise AuthenticationError(
                f"{service} refused {self._who()} for scope {escape(scope)!r} "
                f"({answer.status_code}): check the username and password",
                hints=(Hint.CREDENTIALS,))
        if answer.status_code != 200:
            raise status_error(answer, service)
        what = f"the token answer of {service}"
        doc = read_json(answer, self._max_token_bytes, what, deadline)
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryResponseError(
                f"{service} answered without a token: check the registry's token auth "
                "configuration")
        return token


def status_error(response: Response, what: str) -> OCIError:
    """Our error for an unexpected status (the caller handles the statuses it expects)."""
    code = response.status_code
    wait = (retry_after(response.headers, time.time()) if code in RETRY_AFTER_STATUSES
            else None)
    asked = f" (it asked to wait {_seconds(wait)} s)" if wait is not None else ""
    detail = _registry_error_code(response)
    response.close()
    if code in (401, 403):
        return AuthenticationError(
            f"registry denied access to {what} ({code}{detail}): grant the credentials pull "
            "access to this repository", hints=(Hint.CREDENTIALS,))
    if code == 429:
        return RegistryServerError(
            f"registry rate limited chartguard on {what} (429{detail}) after retries"
            f"{asked}: too many requests; it is retried later")
    if code in _RETRY_STATUSES:
        return RegistryServerError(
            f"registry failed on {what} ({code}{detail}) after retries{asked}: the registry "
            "is unhealthy; it is retried later")
    return RegistryResponseError(
        f"registry answered {code}{detail} for {what}: check the repository URL and that "
        "the registry speaks the OCI distribution API")


def _asked_to_wait(status: int) -> str:
    return "rate limited chartguard" if status == 429 else "is unavailable"


def _held(hold: Hold) -> RateLimitedError:
    # no repository or path: the request it answered may be another tenant's chart; no
    # "seconds left" either: the same text at every pass keeps a condition quoting it still
    return RateLimitedError(
        f"registry {hold.host} {_asked_to_wait(hold.status)} ({hold.status}) and asked to "
        f"wait {_seconds(hold.asked)} s (Retry-After): nothing is sent to it before "
        f"{hold.until} (UTC); it is tried again then", retry_after=hold.left)


def _registry_error_code(response: Response) -> str:
    # distribution error bodies: {"errors":[{"code":"NAME_UNKNOWN",...}]}; codes are safe to show
    try:
        doc = loads_json(read_limited(response, _MAX_ERROR_BODY, "an error body"),
                         what="an error body")
        errors = doc.get("errors") if isinstance(doc, dict) else None
        codes = [str(e.get("code")) for e in errors or [] if isinstance(e, dict)
                 and e.get("code")] if isinstance(errors, list) else []
    except (OCIError, UntrustedInputError):
        return ""  # no parsable error body: the status says enough
    # the registry writes these: keep only what looks like a code (DENIED, NAME_UNKNOWN)
    codes = [c for c in codes if _ERROR_CODE.fullmatch(c)]
    return f" {','.join(codes[:3])}" if codes else ""


def _seconds(value: float) -> str:
    if value == float("inf"):
        return "more than 10^10"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


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
