"""A local fake of IGDB v4 and of the Twitch token endpoint it needs (tests never reach the internet).

Shaped on IGDB's API documentation (api-docs.igdb.com: "Getting Started", "Authentication", "Endpoints › Game",
"APICalypse", "Expander", "Response codes") and Twitch's "Getting OAuth Access Tokens › Client credentials grant flow"
(dev.twitch.tv/docs/authentication/getting-tokens-oauth):

- POST /oauth2/token with client_id, client_secret and grant_type=client_credentials (form body or query) answers
  `{"access_token": "...", "expires_in": 5011271, "token_type": "bearer"}`; a wrong client id is 400
  `{"status": 400, "message": "invalid client"}`, a wrong secret 403 `{"status": 403, "message": "invalid client
  secret"}`.
- POST /v4/games with an Apicalypse body (`fields`, `search`, `where`, `limit`, `offset`) and the headers
  `Client-ID` + `Authorization: Bearer <token>` answers a JSON array. Each object carries `id` plus the asked fields;
  a dotted field (`genres.name`) expands the reference into objects with `id` and that field, an unexpanded
  reference is its id (or list of ids). A bad or missing token is 401 with IGDB's "Authorization Failure" body, a
  query it cannot parse 400 `[{"title": "Syntax Error", "status": 400, "cause": "..."}]`.

Games are recorded in `tests/fakes/igdb/games.json`, fully expanded. One fake serves both hosts (the provider asks
for the token at its own base address when the server overrides it), or serve it twice for two addresses.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("igdb")
CLIENT_ID = "jzkbprff40iqj646a697cyrvl0zt2m6"
CLIENT_SECRET = "hof5gwx0su6owfnys0nyan9c87zr6t"
TOKEN_LIFETIME = 5_011_271  # seconds, as in Twitch's example
REDACTED = "[redacted]"
MODES = ("ok", "rate_limited", "error", "slow", "malformed")
DEFAULT_LIMIT = 10
MAX_LIMIT = 500

AUTH_FAILURE = {
    "message": "Authorization Failure. Have you tried:",
    "Tip 1": "Ensure you are sending Authorization and Client-ID as a header",
    "Tip 2": "Ensure Authorization value starts with 'Bearer ', including the space",
    "Tip 3": "Ensure Authorization value ends with the App Access Token and not your Client Secret",
    "Docs": "https://api-docs.igdb.com/#authentication",
}

_CLAUSE = re.compile(r"\s*(fields|f|exclude|x|search|where|w|limit|l|offset|o|sort|s)\s+"
                     r"((?:[^;\"]|\"(?:[^\"\\]|\\.)*\")*);", re.IGNORECASE)
_STRING = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_CONDITION = re.compile(r"^(id|first_release_date)\s*(=|>=|<=|>|<)\s*(\d+)$")


class FakeIgdb:
    """A WSGI app: `mode` switches failure behaviour, `requests` records (method, path, what was asked) with the
    secret and tokens redacted, `token_requests` counts tokens handed out."""

    def __init__(self, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.mode = "ok"
        self.delay = 1.0
        self.expires_in = TOKEN_LIFETIME
        self.refuse_tokens = False  # IGDB answers 401 to every token (an application without IGDB access)
        self.requests: list[tuple[str, str, str]] = []
        self.tokens: dict[str, str] = {}  # token → client id
        self.token_requests = 0
        self.games: list[dict[str, Any]] = json.loads((DATA_DIR / "games.json").read_text(encoding="utf-8"))
        self._lock = threading.Lock()

    def revoke_tokens(self) -> None:
        """Every token handed out so far stops working (as an expired or revoked one does)."""
        with self._lock:
            self.tokens.clear()

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        self.requests.append((request.method, request.path, self._redacted(body)))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "rate_limited":
            return _json({"message": "Too Many Requests"}, 429, {"Retry-After": "1"})
        if self.mode == "error":
            return _json({"message": "Internal Server Error"}, 500)
        if request.method != "POST":
            return _json({"message": "Method Not Allowed"}, 405)
        if request.path == "/oauth2/token":
            response = self._token(request)
        elif request.path.rstrip("/") == "/v4/games":
            response = self._games(request, body)
        else:
            response = _json({"message": "Not Found"}, 404)
        if self.mode == "malformed" and response.status_code == 200:
            data = response.get_data()
            response.set_data(data[: max(1, len(data) // 2)])  # a connection cut mid-body
        return response

    def _redacted(self, text: str) -> str:
        for secret in (self.client_secret, *list(self.tokens)):
            text = text.replace(secret, REDACTED)
        return text

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        fields = {**request.args.to_dict(), **request.form.to_dict()}
        if fields.get("grant_type") != "client_credentials":
            return _json({"status": 400, "message": "invalid grant type"}, 400)
        if fields.get("client_id") != self.client_id:
            return _json({"status": 400, "message": "invalid client"}, 400)
        if fields.get("client_secret") != self.client_secret:
            return _json({"status": 403, "message": "invalid client secret"}, 403)
        token = secrets.token_hex(15)
        with self._lock:
            self.tokens[token] = self.client_id
            self.token_requests += 1
        return _json({"access_token": token, "expires_in": self.expires_in, "token_type": "bearer"})

    def _games(self, request: Request, body: str) -> Response:
        header = request.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
        with self._lock:
            owner = self.tokens.get(token)
        if owner is None or request.headers.get("Client-ID") != owner or self.refuse_tokens:
            return _json(AUTH_FAILURE, 401)
        try:
            query = parse_query(body)
        except ValueError as exc:
            return _json([{"title": "Syntax Error", "status": 400, "cause": str(exc)}], 400)
        found = [game for game in self.games if _matches(game, query)]
        page = found[query["offset"]: query["offset"] + query["limit"]]
        return _json([project(game, query["fields"]) for game in page])


# --- Apicalypse (the part the provider uses) ------------------------------------------------------------------


def parse_query(body: str) -> dict[str, Any]:
    """fields / search / where (`&`-joined comparisons on id and first_release_date) / limit / offset."""
    query: dict[str, Any] = {"fields": [], "search": None, "where": [], "limit": DEFAULT_LIMIT, "offset": 0}
    position = 0
    text = body.strip()
    while position < len(text):
        match = _CLAUSE.match(text, position)
        if match is None:
            raise ValueError(f"Expecting a STRING as input, surround your input with quotes starting at "
                             f"'{text[position:position + 20]}'")
        name, value = match[1].lower()[:1], match[2].strip()
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
        if name == "f":
            query["fields"] = [f.strip() for f in value.split(",") if f.strip()]
        elif name == "s" and match[1].lower().startswith("se"):
            string = _STRING.match(value)
            if string is None:
                raise ValueError("search expects a quoted string")
            query["search"] = re.sub(r"\\(.)", r"\1", string[1])
        elif name == "w":
            query["where"] = [_condition(part) for part in value.split("&")]
        elif name in ("l", "o"):
            if not value.isdigit():
                raise ValueError(f"{match[1]} expects a number")
            key = "limit" if name == "l" else "offset"
            query[key] = int(value)
    if not 1 <= query["limit"] <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    return query


def _condition(text: str) -> tuple[str, str, int]:
    match = _CONDITION.match(text.strip())
    if match is None:
        raise ValueError(f"cannot read the condition {text.strip()!r}")
    return match[1], match[2], int(match[3])


def _matches(game: dict[str, Any], query: dict[str, Any]) -> bool:
    wanted = query["search"]
    if wanted is not None and not all(word in game["name"].casefold() for word in wanted.casefold().split()):
        return False
    for field, operator, number in query["where"]:
        value = game.get(field)
        if not isinstance(value, int):
            return False
        if not {"=": value == number, ">=": value >= number, "<=": value <= number, ">": value > number,
                "<": value < number}[operator]:
            return False
    return True


def project(document: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The document as IGDB sends it for these fields: `id` always, references expanded only where asked."""
    if "*" in fields:
        return copy.deepcopy(document)
    tree: dict[str, Any] = {}
    for field in fields:
        node = tree
        for part in field.split("."):
            node = node.setdefault(part, {})
    return _project(document, tree)


def _project(document: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"id": document["id"]}
    for name, subtree in tree.items():
        if name not in document:
            continue
        value = document[name]
        if subtree:
            if isinstance(value, list):
                result[name] = [_project(v, subtree) for v in value]
            elif isinstance(value, dict):
                result[name] = _project(value, subtree)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            result[name] = [v["id"] for v in value]
        elif isinstance(value, dict):
            result[name] = value["id"]
        else:
            result[name] = copy.deepcopy(value)
    return result


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers or {},
                    content_type="application/json;charset=utf-8")
