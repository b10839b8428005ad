"""Outbound HTTP (collectz.providers.http): URL policy, status mapping, redirects, timeouts, hardened parsing, and
secrets (API key params, token headers) never reaching a message, a traceback or a log line.

Every call goes to a local WSGI fake; nothing reaches the internet.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from collectz import create_app
from collectz.config import ConfigError, Settings
from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    HttpClient,
    NotFoundAt,
    ProviderError,
    RateLimited,
    Unavailable,
    Unreachable,
    UrlRejected,
    check_base_url,
    parse_retry_after,
)
from collectz.providers.throttle import Throttle
from tests.fakes.server import RunningFake, serve_wsgi

API_KEY = "sk-live-9f8e7d6c5b4a39281706"
TOKEN = "plex-token-Zq4Wm8Rt2Yx6"

XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>')
PARAMETER_XXE = (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{base}/evil.dtd"> %p;]><r>hi</r>')
LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
          b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
          b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">'
          b'<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]><lolz>&lol4;</lolz>')


class Fake:
    """A small HTTP server that answers what each test asks for, and remembers what it was asked."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.other_origin = ""  # set once both addresses are known

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        self.seen.append({"method": request.method, "path": request.path, "args": dict(request.args),
                          "headers": dict(request.headers)})
        return self.answer(request)(environ, start_response)

    def answer(self, request: Request) -> Response:
        path = request.path
        if path == "/echo":
            body = {"method": request.method, "args": dict(request.args), "headers": dict(request.headers),
                    "json": request.get_json(silent=True)}
            return Response(json.dumps(body), content_type="application/json")
        if path.startswith("/status/"):
            headers = {"Retry-After": request.args["retry"]} if "retry" in request.args else {}
            return Response("{}", status=int(path.rsplit("/", 1)[1]), headers=headers,
                            content_type="application/json")
        if path == "/slow":
            time.sleep(1.0)
            return Response("{}", content_type="application/json")
        if path == "/bad-json":
            return Response('{"results": [1, 2', content_type="application/json")
        if path == "/xml":
            return Response('<MediaContainer size="1"><Video title="Alien"/></MediaContainer>',
                            content_type="application/xml")
        if path == "/bad-xml":
            return Response("<MediaContainer><Video></MediaContainer>", content_type="application/xml")
        if path == "/xxe":
            return Response(XXE, content_type="application/xml")
        if path == "/parameter-xxe":
            return Response(PARAMETER_XXE.replace(b"{base}", request.host_url.rstrip("/").encode()),
                            content_type="application/xml")
        if path == "/laughs":
            return Response(LAUGHS, content_type="application/xml")
        if path == "/evil.dtd":
            return Response('<!ENTITY leak SYSTEM "file:///etc/passwd">', content_type="application/xml-dtd")
        if path == "/redirect/same":
            return Response("", status=302, headers={"Location": "/echo?page=2"})
        if path == "/redirect/absolute-same":
            return Response("", status=301, headers={"Location": request.host_url + "echo"})
        if path == "/redirect/other":
            return Response("", status=302, headers={"Location": self.other_origin + "/echo"})
        if path == "/redirect/loop":
            return Response("", status=302, headers={"Location": "/redirect/loop"})
        if path == "/redirect/no-location":
            return Response("", status=302)
        if path == "/form":
            return Response("", status=303, headers={"Location": "/echo"})
        return Response("{}", status=404, content_type="application/json")


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[Fake, RunningFake]]:
    app = Fake()
    with serve_wsgi(app) as running:
        app.other_origin = f"http://localhost:{running.port}"  # same server, another host name
        yield app, running


def client_for(running: RunningFake, **kwargs: Any) -> HttpClient:
    kwargs.setdefault("allow_private", True)  # the fake listens on loopback
    kwargs.setdefault("params", {"api_key": API_KEY})
    kwargs.setdefault("headers", {"X-Plex-Token": TOKEN})
    return HttpClient("tmdb", running.url, **kwargs)


def assert_no_secret(exc: BaseException) -> None:
    """Neither the message, the repr nor a formatted traceback (with its chain) carries a secret."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    for text in texts:
        assert API_KEY not in text and TOKEN not in text, text
    assert "api_key" not in str(exc)


# -- the outbound URL policy ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("url,reason", [
    ("ftp://files.example.org", "http:// or https://"),
    ("file:///etc/passwd", "http:// or https://"),
    ("https://", "host name"),
    ("https://user:pw@api.example.org", "user name and password"),
    ("https://api.example.org/#frag", "'#'"),
    ("https://api.example.org/?api_key=x", "'?'"),
    ("https://api.example.org:99999", "port"),
])
def test_the_policy_refuses_malformed_addresses(url: str, reason: str) -> None:
    with pytest.raises(UrlRejected) as excinfo:
        check_base_url(url, provider="tmdb", allow_private=True)
    assert reason in excinfo.value.message
    assert str(excinfo.value).startswith("tmdb: ")
    assert excinfo.value.status == "bad_url"


@pytest.mark.parametrize("url,kind", [
    ("http://10.0.0.1", "private"),
    ("http://192.168.1.2:32400", "private"),
    ("http://127.0.0.1:8080", "loopback"),
    ("http://[::1]", "loopback"),
    ("http://[fe80::1]", "link-local"),
    ("http://169.254.169.254/latest/meta-data", "link-local"),
    ("http://[::ffff:10.0.0.1]", "private"),
    ("http://[::ffff:127.0.0.1]", "loopback"),
    ("http://0.0.0.0", "unspecified"),
    ("http://224.0.0.1", "multicast"),
    ("http://100.64.0.1", "not a public address"),
    ("http://localhost:8080", "loopback"),
])
def test_private_addresses_are_refused_unless_allowed(url: str, kind: str) -> None:
    with pytest.raises(UrlRejected) as excinfo:
        check_base_url(url, provider="tmdb", allow_private=False)
    assert kind in excinfo.value.message and "public" in excinfo.value.message

    assert check_base_url(url, provider="plex", allow_private=True) == url.rstrip("/")


def test_a_public_literal_is_accepted_without_any_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a literal address must not be looked up")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    assert check_base_url("https://93.184.215.14/", provider="tmdb", allow_private=False) == "https://93.184.215.14"
    assert HttpClient("tmdb", "https://93.184.215.14:8443/3/").base_url == "https://93.184.215.14:8443/3"


def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS may answer with several addresses; one private among them is enough to refuse."""
    answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
               (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443))]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(UrlRejected, match=r"api\.example\.org \(which resolves to 10\.1\.2\.3\)"):
        check_base_url("https://api.example.org", provider="tmdb", allow_private=False)

    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers[:1])
    assert check_base_url("https://api.example.org/", provider="tmdb", allow_private=False) == \
        "https://api.example.org"


def test_a_name_that_does_not_resolve_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(Unreachable, match="could not be resolved"):
        HttpClient("tmdb", "https://api.example.org")


def test_the_fake_on_loopback_is_refused_for_a_public_provider(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    with pytest.raises(UrlRejected):
        client_for(running, allow_private=False)


def test_a_request_names_a_path_never_another_url(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    client = client_for(running)
    for target in ("http://169.254.169.254/latest", "//evil.example/x"):
        with pytest.raises(UrlRejected):
            client.request("GET", target)


def test_from_config_uses_the_saved_address_or_the_default(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    saved = ProviderConfig(provider="plex", base_url=running.url + "/", allow_private=True, timeout=2.5)
    client = HttpClient.from_config(saved, "https://plex.tv")
    assert (client.provider, client.base_url, client.timeout) == ("plex", running.url, 2.5)

    default = ProviderConfig(provider="tmdb", timeout=4.0)
    client = HttpClient.from_config(default, "https://93.184.215.14")
    assert (client.base_url, client.timeout, client.allow_private) == ("https://93.184.215.14", 4.0, False)
    with pytest.raises(UrlRejected):  # a private saved address for a public provider
        HttpClient.from_config(ProviderConfig(provider="tmdb", base_url=running.url), "https://93.184.215.14")


# -- requests and answers ------------------------------------------------------------------------------------------

def test_default_params_and_headers_go_with_every_request(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    body = client_for(running).get_json("/echo", params={"query": "alien"}, headers={"Accept-Language": "fr"})
    assert body["method"] == "GET"
    assert body["args"] == {"api_key": API_KEY, "query": "alien"}
    assert body["headers"]["X-Plex-Token"] == TOKEN
    assert body["headers"]["Accept-Language"] == "fr"
    assert body["headers"]["User-Agent"].startswith("collectZ")
    assert API_KEY not in repr(client_for(running))


@pytest.mark.parametrize("code,error,status", [
    (401, BadCredentials, "bad_credentials"),
    (403, BadCredentials, "bad_credentials"),
    (404, NotFoundAt, "not_found"),
    (429, RateLimited, "rate_limited"),
    (500, Unavailable, "unavailable"),
    (503, Unavailable, "unavailable"),
    (418, BadResponse, "bad_response"),
    (304, BadResponse, "bad_response"),
])
def test_statuses_map_to_errors(fake: tuple[Fake, RunningFake], code: int, error: type[ProviderError],
                                status: str) -> None:
    _app, running = fake
    with pytest.raises(error) as excinfo:
        client_for(running).get_json(f"/status/{code}")
    exc = excinfo.value
    assert type(exc) is error and exc.status == status and exc.provider == "tmdb"
    assert str(exc).startswith(f"tmdb: GET /status/{code} answered {code}")
    assert_no_secret(exc)


def test_retry_after_in_seconds_and_as_a_date(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    client = client_for(running)
    with pytest.raises(RateLimited) as excinfo:
        client.get_json("/status/429", params={"retry": "17"})
    assert excinfo.value.retry_after == 17.0

    later = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    with pytest.raises(RateLimited) as excinfo:
        client.get_json("/status/429", params={"retry": later})
    assert excinfo.value.retry_after is not None and 115 <= excinfo.value.retry_after <= 121

    with pytest.raises(RateLimited) as excinfo:
        client.get_json("/status/429")
    assert excinfo.value.retry_after is None


@pytest.mark.parametrize("raw,expected", [
    ("0", 0.0), ("120", 120.0), (" 5 ", 5.0), ("", None), (None, None), ("soon", None), ("-3", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past: retry now
])
def test_parse_retry_after(raw: str | None, expected: float | None) -> None:
    assert parse_retry_after(raw) == expected


def test_a_429_penalizes_the_throttle(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    throttle = Throttle(f"test-http-{uuid.uuid4().hex}", rate=100, burst=100)
    client = client_for(running, throttle=throttle)
    client.get_json("/echo")
    with pytest.raises(RateLimited):
        client.get_json("/status/429", params={"retry": "5"})
    with pytest.raises(RateLimited) as excinfo:  # the next call does not even leave the process
        throttle.acquire(timeout=0.5)
    assert excinfo.value.retry_after is not None and excinfo.value.retry_after > 4


def test_a_same_host_redirect_is_followed(fake: tuple[Fake, RunningFake]) -> None:
    app, running = fake
    body = client_for(running).get_json("/redirect/same")
    assert body["args"] == {"page": "2"}
    assert body["headers"]["X-Plex-Token"] == TOKEN  # same origin: the credentials go along
    assert client_for(running).get_json("/redirect/absolute-same")["method"] == "GET"


def test_a_redirect_to_another_host_is_refused(fake: tuple[Fake, RunningFake]) -> None:
    app, running = fake
    before = len(app.seen)
    with pytest.raises(BadResponse) as excinfo:
        client_for(running).get_json("/redirect/other")
    assert "another server (localhost)" in excinfo.value.message
    assert [seen["path"] for seen in app.seen[before:]] == ["/redirect/other"]  # never followed
    assert_no_secret(excinfo.value)


def test_redirects_are_bounded(fake: tuple[Fake, RunningFake]) -> None:
    app, running = fake
    before = len(app.seen)
    with pytest.raises(BadResponse, match="more than 2 redirects"):
        client_for(running, max_redirects=2).get_json("/redirect/loop")
    assert len(app.seen) - before == 3
    with pytest.raises(BadResponse, match="without Location"):
        client_for(running).get_json("/redirect/no-location")


def test_a_303_after_post_becomes_a_get(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    response = client_for(running).request("POST", "/form", json={"title": "Alien"})
    assert response.json()["method"] == "GET" and response.json()["json"] is None
    echoed = client_for(running).request("POST", "/echo", json={"title": "Alien"}).json()
    assert echoed["method"] == "POST" and echoed["json"] == {"title": "Alien"}


def test_a_slow_answer_times_out(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    started = time.monotonic()
    with pytest.raises(Unreachable) as excinfo:
        client_for(running, timeout=0.2).get_json("/slow")
    assert time.monotonic() - started < 0.9
    assert "no answer within 0.2 s" in excinfo.value.message and excinfo.value.status == "unreachable"
    assert_no_secret(excinfo.value)


def test_a_refused_connection_is_unreachable() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(Unreachable) as excinfo:
        HttpClient("plex", f"http://127.0.0.1:{port}", allow_private=True, params={"api_key": API_KEY},
                   headers={"X-Plex-Token": TOKEN}).get_json("/library/sections")
    assert "refused" in excinfo.value.message
    assert str(excinfo.value).startswith("plex: GET /library/sections: ")
    assert excinfo.value.__context__ is None and excinfo.value.__cause__ is None
    assert_no_secret(excinfo.value)


def test_malformed_json_and_xml_are_bad_responses(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    client = client_for(running)
    with pytest.raises(BadResponse, match="not valid JSON") as excinfo:
        client.get_json("/bad-json")
    assert_no_secret(excinfo.value)
    with pytest.raises(BadResponse, match="not well-formed XML") as excinfo:
        client.get_xml("/bad-xml")
    assert_no_secret(excinfo.value)
    root = client.get_xml("/xml")
    assert root.tag == "MediaContainer" and root[0].get("title") == "Alien"


@pytest.mark.parametrize("path", ["/xxe", "/laughs", "/parameter-xxe"])
def test_entity_tricks_are_refused_without_being_expanded_or_fetched(fake: tuple[Fake, RunningFake],
                                                                      path: str) -> None:
    app, running = fake
    before = len(app.seen)
    started = time.monotonic()
    with pytest.raises(BadResponse, match="declares entities"):
        client_for(running).get_xml(path)
    assert time.monotonic() - started < 1
    assert [seen["path"] for seen in app.seen[before:]] == [path]  # the external DTD was never fetched


def test_no_message_ever_carries_the_query_string(fake: tuple[Fake, RunningFake]) -> None:
    _app, running = fake
    client = client_for(running, timeout=0.2)
    paths = ["/status/401", "/status/404", "/status/429", "/status/500", "/status/418", "/bad-json",
             "/redirect/other", "/redirect/loop", "/slow"]
    for path in paths:
        with pytest.raises(ProviderError) as excinfo:
            client.get_json(path + "?extra=" + API_KEY, params={"api_key": API_KEY})
        assert_no_secret(excinfo.value)
        assert "?" not in excinfo.value.message


# -- logging -------------------------------------------------------------------------------------------------------

def client_side_leaks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Log lines with a secret, leaving out the fake server's own access log (that is the provider's side)."""
    return [r.getMessage() for r in caplog.records if r.name != "werkzeug"
            and (API_KEY in r.getMessage() or TOKEN in r.getMessage())]


def test_urllib3_never_logs_request_lines_even_at_debug(fake: tuple[Fake, RunningFake], tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    _app, running = fake
    transport = logging.getLogger("urllib3")
    saved_level = transport.level
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG, as LOG_LEVEL=DEBUG with a root handler would be
    try:
        transport.setLevel(logging.NOTSET)
        client_for(running).get_json("/echo")
        # Left at DEBUG, urllib3 logs the request line with the key: so the check below can fail.
        assert client_side_leaks(caplog)
        caplog.clear()

        settings = Settings.from_env({"COLLECTZ_ENV": "testing"})
        settings.INSTANCE_PATH, settings.LOG_LEVEL = str(tmp_path), "DEBUG"
        create_app(settings=settings)
        assert transport.getEffectiveLevel() >= logging.WARNING
        client_for(running).get_json("/echo")
        client_for(running).get_json("/redirect/same")
        assert not client_side_leaks(caplog)
    finally:
        transport.setLevel(saved_level)
        logging.getLogger("collectz").setLevel(logging.WARNING)


# -- settings used by the providers --------------------------------------------------------------------------------

def test_provider_settings_have_defaults_and_are_checked() -> None:
    s = Settings.from_env({})
    assert s.TMDB_BASE_URL == "https://api.themoviedb.org"
    assert s.TMDB_IMAGE_BASE_URL == "https://image.tmdb.org/t/p"
    assert s.OUTBOUND_TIMEOUT_SECONDS == 10
    assert Settings.from_env({"OUTBOUND_TIMEOUT_SECONDS": "3"}).OUTBOUND_TIMEOUT_SECONDS == 3
    with pytest.raises(ConfigError, match="OUTBOUND_TIMEOUT_SECONDS must be at least 1"):
        Settings.from_env({"OUTBOUND_TIMEOUT_SECONDS": "0"})
    with pytest.raises(ConfigError, match="TMDB_BASE_URL"):
        Settings.from_env({"TMDB_BASE_URL": "api.themoviedb.org"})
    with pytest.raises(ConfigError, match="TMDB_IMAGE_BASE_URL"):
        Settings.from_env({"TMDB_IMAGE_BASE_URL": "ftp://image.tmdb.org"})


def test_a_name_that_turns_private_after_the_check_is_refused_at_connect(
        monkeypatch: pytest.MonkeyPatch, fake: tuple[Fake, RunningFake]) -> None:
    """DNS rebinding: the name was public when the client was built, then answers with a loopback address. The
    connection itself is checked, so no request reaches the LAN."""
    _app, running = fake
    real = socket.getaddrinfo
    answers = iter([[(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", running.port))]])

    def rebinding(host: str, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return next(answers, None) or real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    client = HttpClient("tmdb", f"http://rebind.example:{running.port}", params={"api_key": API_KEY})
    before = len(_app.seen)
    with pytest.raises(UrlRejected, match="not public") as caught:
        client.get_json("/echo")
    assert_no_secret(caught.value)
    assert len(_app.seen) == before  # the request never reached the server


def test_an_answer_larger_than_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                   fake: tuple[Fake, RunningFake]) -> None:
    from collectz.providers import http

    _app, running = fake
    monkeypatch.setattr(http, "MAX_RESPONSE_BYTES", 10)
    with pytest.raises(BadResponse, match="larger than"):
        client_for(running).get_json("/echo")
