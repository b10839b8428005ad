"""Outbound HTTP for every provider: one outbound-URL policy, timeouts, manual redirects, status → error mapping.

Provider clients never call `requests` themselves. Errors carry a `status` (the badge shown on an integration card)
and a message that names the provider, the method and the path only: query strings and headers carry API keys and
tokens, so they never reach a message, a log line or a traceback (exceptions from `requests` are not chained).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
import requests.adapters
import urllib3
import urllib3.connection
from lxml import etree

from collectz.providers.config import ProviderConfig

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
USER_AGENT = "collectZ (self-hosted media catalog)"


def quiet_transport_loggers() -> None:
    """urllib3 logs whole request lines (query strings with API keys) at DEBUG: keep it at WARNING or above."""
    transport = logging.getLogger("urllib3")
    if transport.level < logging.WARNING:  # NOTSET (0) would inherit a DEBUG root
        transport.setLevel(logging.WARNING)


quiet_transport_loggers()


class ProviderError(Exception):
    """A provider call failed; `status` is the badge key shown on the integration card."""

    status: ClassVar[str] = "error"

    def __init__(self, provider: str, message: str) -> None:
        super().__init__(f"{provider}: {message}")
        self.provider = provider
        self.message = message


class Unreachable(ProviderError):
    """DNS failure, connection refused, timeout, TLS error."""

    status = "unreachable"


class Unavailable(ProviderError):
    """The provider answered 5xx."""

    status = "unavailable"


class BadCredentials(ProviderError):
    """401 or 403: the key or token was refused."""

    status = "bad_credentials"


class RateLimited(ProviderError):
    """429 (or our own throttle gave up waiting); `retry_after` is in seconds when known."""

    status = "rate_limited"

    def __init__(self, provider: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(provider, message)
        self.retry_after = retry_after


class NotFoundAt(ProviderError):
    """404."""

    status = "not_found"


class BadResponse(ProviderError):
    """Malformed JSON/XML, an unexpected status, a redirect to another host or too many redirects."""

    status = "bad_response"


class UrlRejected(ProviderError):
    """The address fails the outbound URL policy."""

    status = "bad_url"


def check_base_url(url: str, *, provider: str, allow_private: bool) -> str:
    """Apply the outbound URL policy to a provider's base address; return it without a trailing slash.

    http/https only, a host, no user:password@, no query or fragment. Unless `allow_private`, every address the host
    resolves to must be public: a server-side request to loopback, the LAN or a cloud metadata endpoint is refused.
    A host name that does not resolve raises Unreachable (the policy cannot be checked, and the card should say why).
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRejected(provider, "the address is not a valid URL (check the port number)") from None
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise UrlRejected(provider, "the address must start with http:// or https://")
    if not parts.hostname:
        raise UrlRejected(provider, "the address needs a host name, e.g. https://example.org")
    if parts.username is not None or parts.password is not None:
        raise UrlRejected(provider, "remove the user name and password from the address; "
                                    "credentials go in their own fields")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise UrlRejected(provider, "the address must not contain '?' or '#': give only the server's base address")
    if not allow_private:
        _check_public(parts.hostname, port or DEFAULT_PORTS[parts.scheme.lower()], provider)
    return url.rstrip("/")


def _check_public(host: str, port: int, provider: str) -> None:
    """Refuse a host if ANY of its addresses is not public (a name may resolve to a public and a private one)."""
    try:
        addresses, literal = [ipaddress.ip_address(host)], True  # a literal needs no lookup
    except ValueError:
        addresses, literal = _resolve(host, port, provider), False
    for address in addresses:
        reason = _non_public_reason(address)
        if reason:
            shown = host if literal else f"{host} (which resolves to {address})"
            raise UrlRejected(provider, f"{shown} is not a public address ({reason}); this provider may only call "
                                        "public addresses")


def _resolve(host: str, port: int, provider: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise Unreachable(provider, f"the host name {host} could not be resolved") from None
    # Strip an IPv6 zone ("fe80::1%eth0"), which ip_address() does not accept.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def _non_public_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not public, or None. IPv4-mapped/embedded IPv6 addresses are judged as their IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # the kernel connects to the IPv4 address itself
            return _non_public_reason(address.ipv4_mapped)
        embedded = address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None and _non_public_reason(embedded):
            return _non_public_reason(embedded)
    checks = (("loopback", address.is_loopback), ("unspecified", address.is_unspecified),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("private", address.is_private), ("reserved", address.is_reserved),
              ("non-public", not address.is_global))
    return next((name for name, hit in checks if hit), None)


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, kind) or any(isinstance(a, kind) for a in getattr(exc, "args", ())):
            return True
        reason = getattr(exc, "reason", None)
        if isinstance(reason, kind):
            return True
        nested = reason if isinstance(reason, BaseException) else None
        exc, seen = exc.__cause__ or exc.__context__ or nested, seen + 1
    return False


def _read_capped(response: requests.Response, provider: str, where: str) -> None:
    """Read the body (streamed) up to MAX_RESPONSE_BYTES; BadResponse for anything larger."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
        response.close()
        raise BadResponse(provider, f"{where}: the answer is larger than {MAX_RESPONSE_BYTES // 2**20} MB")
    body = bytearray()
    for block in response.iter_content(64 * 1024):
        body += block
        if len(body) > MAX_RESPONSE_BYTES:
            response.close()
            raise BadResponse(provider, f"{where}: the answer is larger than {MAX_RESPONSE_BYTES // 2**20} MB")
    response._content = bytes(body)  # what .content/.json()/.text read from now on


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "UTC, origin unknown"
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - time.time())


class PeerRefused(OSError):
    """The connection reached an address the outbound policy refuses (a name re-resolved to a private address)."""


def _peer_check(sock: socket.socket) -> None:
    try:
        address = ipaddress.ip_address(str(sock.getpeername()[0]).split("%", 1)[0])
    except (OSError, ValueError):
        return
    reason = _non_public_reason(address)
    if reason:
        sock.close()
        raise PeerRefused(f"connected to a {reason} address")


class _PublicHTTPConnection(urllib3.connection.HTTPConnection):
    """Checks the address actually connected to, not only the one the name had when the client was built (a DNS
    answer that changes in between — "rebinding" — must not reach the LAN)."""

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _peer_check(sock)
        return sock


class _PublicHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _peer_check(sock)
        return sock


class _PublicHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _PublicHTTPConnection


class _PublicHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _PublicHTTPSConnection


class _PublicOnlyAdapter(requests.adapters.HTTPAdapter):
    """Direct connections go through the peer check (a configured proxy is the admin's own choice)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _PublicHTTPPool, "https": _PublicHTTPSPool}


MAX_RESPONSE_BYTES = 20 * 1024 * 1024  # no provider answer is larger; a bigger one is refused, not read


class HttpClient:
    """One provider's HTTP session: policy-checked base URL, secret default headers/params, timeouts, throttle."""

    def __init__(self, provider: str, base_url: str, *, allow_private: bool = False, timeout: float = 10.0,
                 connect_timeout: float = 3.05, headers: Mapping[str, str] | None = None,
                 params: Mapping[str, str] | None = None, max_redirects: int = 3,
                 throttle: Throttle | None = None, session: requests.Session | None = None) -> None:
        self.provider = provider
        self.base_url = check_base_url(base_url, provider=provider, allow_private=allow_private)
        self.allow_private = allow_private
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_redirects = max_redirects
        self.throttle = throttle
        self.session = session or requests.Session()
        if not allow_private:
            adapter = _PublicOnlyAdapter()
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)
        # Secret by contract (api_key, X-Plex-Token, …): kept out of repr, messages and logs.
        self._headers = {"User-Agent": USER_AGENT, **dict(headers or {})}
        self._params = dict(params or {})
        self._origin = _origin(self.base_url)

    def __repr__(self) -> str:
        return f"<HttpClient {self.provider} {self.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, default_base_url: str, **kwargs: Any) -> HttpClient:
        """A client for a saved integration: its base URL (or the default), its private-address and timeout policy."""
        kwargs.setdefault("allow_private", config.allow_private)
        kwargs.setdefault("timeout", config.timeout)
        return cls(config.provider, config.base_url or default_base_url, **kwargs)

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, json: Any = None,
                data: str | bytes | Mapping[str, Any] | None = None) -> requests.Response:
        """Send one request (following same-origin redirects); a non-2xx answer raises a ProviderError. `json` or
        `data` (a raw body, e.g. IGDB's query language, or form fields) is the body."""
        method = method.upper()
        shown = self._shown_path(path)
        url = self.base_url + "/" + path.lstrip("/")
        all_params: dict[str, Any] | None = {**self._params, **dict(params or {})}
        all_headers = {**self._headers, **dict(headers or {})}
        for _hop in range(self.max_redirects + 1):
            response = self._send(method, url, shown, all_params, all_headers, json, data)
            if response.status_code not in REDIRECT_STATUSES:
                return self._check_status(response, method, shown)
            url = self._redirect_target(response, url, method, shown)
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, json, data = "GET", None, None
            all_params = None  # the Location already carries whatever query the server wants
        raise BadResponse(self.provider, f"{method} {shown}: more than {self.max_redirects} redirects")

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> Any:
        """GET and decode JSON; BadResponse when the body is not JSON."""
        response = self.request("GET", path, params=params, headers={"Accept": "application/json", **(headers or {})})
        try:
            return response.json()
        except ValueError:
            raise BadResponse(self.provider, f"GET {self._shown_path(path)}: the answer is not valid JSON") from None

    def get_xml(self, path: str, *, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> etree._Element:
        """GET and parse XML with a hardened parser: no entities, no DTD, no network; BadResponse when malformed."""
        response = self.request("GET", path, params=params, headers={"Accept": "application/xml", **(headers or {})})
        return parse_xml(response.content, provider=self.provider, where=f"GET {self._shown_path(path)}")

    # -- internals ---------------------------------------------------------------------------------------------

    def _shown_path(self, path: str) -> str:
        """The path as it may appear in a message: never a query string; never a URL to somewhere else."""
        parts = urlsplit(path)
        if parts.scheme or parts.netloc or path.startswith("//"):
            raise UrlRejected(self.provider, "a request must name a path on the provider's server, not another URL")
        return "/" + parts.path.lstrip("/")

    def _send(self, method: str, url: str, shown: str, params: Mapping[str, Any] | None,
              headers: Mapping[str, str], json: Any, data: Any = None) -> requests.Response:
        if self.throttle is not None:
            self.throttle.acquire()
        try:
            response = self.session.request(method, url, params=params, headers=headers, json=json, data=data,
                                            timeout=(self.connect_timeout, self.timeout), allow_redirects=False,
                                            stream=True)
            _read_capped(response, self.provider, f"{method} {shown}")
            return response
        except requests.RequestException as exc:
            failure = self._transport_failure(exc, f"{method} {shown}")
        # Raised outside the except block on purpose: the requests exception (its text holds the full URL with the
        # query string) must not even be attached as __context__.
        raise failure

    def _transport_failure(self, exc: requests.RequestException, where: str) -> ProviderError:
        if _caused_by(exc, PeerRefused):
            return UrlRejected(self.provider, f"{where}: the server's address is not public (it changed after it was "
                                              "checked); this provider may only call public addresses")
        if isinstance(exc, requests.Timeout):
            return Unreachable(self.provider, f"{where}: no answer within {self.timeout:g} s")
        if isinstance(exc, requests.exceptions.SSLError):
            return Unreachable(self.provider, f"{where}: the TLS connection failed "
                                              "(certificate not trusted or not valid for this host?)")
        if isinstance(exc, requests.ConnectionError):
            return Unreachable(self.provider, f"{where}: {_connection_reason(exc)}")
        return BadResponse(self.provider, f"{where}: the request failed ({type(exc).__name__})")

    def _redirect_target(self, response: requests.Response, url: str, method: str, shown: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise BadResponse(self.provider, f"{method} {shown}: a {response.status_code} redirect without Location")
        target = urljoin(url, location)
        if _origin(target) != self._origin:
            other = urlsplit(target).hostname or "an unknown host"
            raise BadResponse(self.provider, f"{method} {shown}: redirected to another server ({other}); "
                                             "set the base address to the server that answers")
        return target

    def error_for(self, response: requests.Response, where: str) -> ProviderError | None:
        """For subclasses: the error a provider's non-2xx answer describes when its body says more than its status
        (e.g. a bad key answered with 400). None: map by status. `where` is safe to put in a message."""
        return None

    def _check_status(self, response: requests.Response, method: str, shown: str) -> requests.Response:
        code = response.status_code
        if 200 <= code < 300:
            return response
        where = f"{method} {shown} answered {code}"
        special = self.error_for(response, where)
        if special is not None:
            if isinstance(special, RateLimited) and self.throttle is not None:
                self.throttle.penalize(special.retry_after)
            raise special
        if code in (401, 403):
            raise BadCredentials(self.provider, f"{where}: the API key or token was refused")
        if code == 404:
            raise NotFoundAt(self.provider, f"{where}: not found")
        if code == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if self.throttle is not None:
                self.throttle.penalize(retry_after)
            wait = f"; retry in {retry_after:.0f} s" if retry_after is not None else ""
            raise RateLimited(self.provider, f"{where}: too many requests{wait}", retry_after=retry_after)
        if code >= 500:
            raise Unavailable(self.provider, f"{where}: the service is having problems")
        raise BadResponse(self.provider, f"{where}: unexpected status")


def parse_xml(content: bytes, *, provider: str, where: str) -> etree._Element:
    """Parse untrusted XML: entities are never expanded, DTDs never loaded, nothing fetched; entity declarations
    (the XXE and billion-laughs vectors) are refused outright."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except (etree.XMLSyntaxError, ValueError):
        raise BadResponse(provider, f"{where}: the answer is not well-formed XML") from None
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise BadResponse(provider, f"{where}: the XML declares entities, which are refused")
    return root


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or DEFAULT_PORTS.get(scheme, 0)


def _connection_reason(exc: BaseException) -> str:
    """A short, secret-free reason for a connection failure (the exception text itself contains the URL)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, socket.gaierror) or type(current).__name__ == "NameResolutionError":
            return "the host name could not be resolved"
        if isinstance(current, ConnectionRefusedError):
            return "the connection was refused (is the server running, and is the port right?)"
        if isinstance(current, TimeoutError) or "Timeout" in type(current).__name__:
            return "the connection timed out"
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return "could not connect"
