"""IGDB (API v4, through a Twitch developer application): game search and details, answered as our `Candidate`s.

IGDB authenticates with a Twitch *app access token*: POST id.twitch.tv/oauth2/token with the application's client ID
and secret (the client-credentials grant), then send `Client-ID` and `Authorization: Bearer <token>` with every
query. A token lives about two months, so it is cached per process until shortly before it expires (keyed by the
token host, the client ID and a hash of the secret — never the secret itself) and fetched again when IGDB refuses
it. Queries are POSTed in IGDB's query language (Apicalypse) as a plain-text body. `normalise_game` is the one place
IGDB's JSON becomes a Candidate.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import requests

from collectz.providers.base import ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import BadCredentials, BadResponse, HttpClient, ProviderError
from collectz.providers.records import Candidate, as_list, clean_text, path_id

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "igdb"
DEFAULT_BASE_URL = "https://api.igdb.com"
DEFAULT_TOKEN_URL = "https://id.twitch.tv"
GAMES_PATH = "/v4/games"
TOKEN_PATH = "/oauth2/token"
IMAGE_BASE_URL = "https://images.igdb.com/igdb/image/upload"
COVER_SIZE = "t_cover_big"  # 264 × 374
MAX_LIMIT = 500  # IGDB's largest page
TOKEN_MARGIN = 60.0  # seconds before its stated expiry that a token is no longer used
GAME_FIELDS = ("name", "first_release_date", "genres.name", "platforms.name", "platforms.abbreviation",
               "involved_companies.company.name", "involved_companies.developer", "involved_companies.publisher",
               "cover.image_id", "summary")

_IMAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FIELD_MAX = 255  # a type detail's length

Clock = Callable[[], float]


# --- Twitch app access tokens -------------------------------------------------------------------------------------

_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()


def clear_token_cache() -> None:
    """Forget every cached token (tests; a process that wants to start over)."""
    with _TOKENS_LOCK:
        _TOKENS.clear()


class TwitchHttp(HttpClient):
    """The Twitch token host. Twitch answers a wrong client ID with 400 `{"status": 400, "message": "invalid
    client"}` and a wrong secret with 403 `{"message": "invalid client secret"}`: both are bad credentials, which
    status alone would not say for the 400."""

    def error_for(self, response: requests.Response, where: str) -> ProviderError | None:
        if response.status_code == 400:
            said = _twitch_message(response)
            if "client" in said:
                return BadCredentials(self.provider, f"{where}: Twitch says {said!r}; check the client ID and "
                                                     "secret in the IGDB integration's settings")
        return None


def _twitch_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return (clean_text(message) or "")[:200].casefold()


class TwitchAuth:
    """Client-credentials tokens for one Twitch application, shared through the process-wide cache."""

    def __init__(self, http: HttpClient, client_id: str, client_secret: str, *,
                 clock: Clock = time.monotonic) -> None:
        self.http = http
        self.client_id = client_id
        self._secret = client_secret
        self._clock = clock
        self._key = (http.base_url, client_id, hashlib.sha256(client_secret.encode()).hexdigest())

    def __repr__(self) -> str:
        return f"<TwitchAuth {self.http.base_url} {self.client_id}>"

    def token(self) -> str:
        """A token that is still good, from the cache or freshly asked for."""
        with _TOKENS_LOCK:
            cached = _TOKENS.get(self._key)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        token, lifetime = self._fetch()
        with _TOKENS_LOCK:
            _TOKENS[self._key] = (token, self._clock() + lifetime)
        return token

    def forget(self, token: str) -> None:
        """Drop a token IGDB refused (revoked, or expired early), unless another thread already replaced it."""
        with _TOKENS_LOCK:
            if _TOKENS.get(self._key, ("", 0.0))[0] == token:
                del _TOKENS[self._key]

    def _fetch(self) -> tuple[str, float]:
        """POST the client-credentials grant as a form (never in the URL: the secret would reach access logs)."""
        response = self.http.request("POST", TOKEN_PATH, headers={"Accept": "application/json"},
                                     data={"client_id": self.client_id, "client_secret": self._secret,
                                           "grant_type": "client_credentials"})
        try:
            body = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token.strip() or isinstance(expires_in, bool) \
                or not isinstance(expires_in, int | float) or expires_in <= 0:
            raise BadResponse(self.http.provider, f"POST {TOKEN_PATH}: the answer is not a Twitch access token")
        lifetime = expires_in - TOKEN_MARGIN if expires_in > 2 * TOKEN_MARGIN else expires_in / 2
        return token.strip(), float(lifetime)


# --- IGDB ---------------------------------------------------------------------------------------------------------


class IgdbClient:
    """Queries IGDB's /v4/games with a Twitch token and returns Candidates."""

    def __init__(self, http: HttpClient, auth: TwitchAuth) -> None:
        self.http = http
        self.auth = auth
        self.provider = http.provider

    def __repr__(self) -> str:
        return f"<IgdbClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    token_base_url: str | None = None, throttle: Throttle | None = None,
                    clock: Clock = time.monotonic) -> IgdbClient:
        """A client for the saved IGDB card: its `client_id` setting and `client_secret` secret.

        When the server overrides the address (`config.base_url`: a mirror, or a local fake in tests) and no token
        address is given, the token is asked for at that same address.
        """
        client_id = clean_text(config.settings.get("client_id"))
        secret = config.secret("client_secret").strip()
        if not client_id or not secret:
            raise BadCredentials(config.provider, "the Twitch client ID and client secret are both needed: copy them "
                                                  "from your application in the Twitch developer console")
        if token_base_url is None:
            token_http = TwitchHttp.from_config(config, DEFAULT_TOKEN_URL)
        else:
            token_http = TwitchHttp(config.provider, token_base_url, allow_private=config.allow_private,
                                    timeout=config.timeout)
        http = HttpClient.from_config(config, base_url, throttle=throttle)
        return cls(http, TwitchAuth(token_http, client_id, secret, clock=clock))

    # -- calls -----------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Prove the credentials work: a token, then the smallest query."""
        self._query("fields name; limit 1;", what="a test query")

    def search(self, title: str, *, year: int | None = None, platform: str | None = None,
               limit: int = 10) -> list[Candidate]:
        """Games whose name matches, IGDB's relevance order; `year` keeps those first released that year, and
        `platform` ("PlayStation 4" or IGDB's "PS4") puts the games on it first, with that as their platform."""
        text = " ".join(str(title or "").split())
        if not text:
            return []
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"an IGDB page holds 1 to {MAX_LIMIT} results")
        clauses = [f"search {apicalypse_string(text)};", f"fields {','.join(GAME_FIELDS)};"]
        if year is not None:
            start, end = _year_bounds(year)
            clauses.append(f"where first_release_date >= {start} & first_release_date < {end};")
        clauses.append(f"limit {limit};")
        on_platform: list[Candidate] = []
        others: list[Candidate] = []
        for game in self._query(" ".join(clauses), what="search results"):
            match = matching_platform(game, platform) if platform else None
            (on_platform if match else others).append(normalise_game(game, platform=match))
        return on_platform + others

    def game(self, igdb_id: int | str) -> Candidate | None:
        """One game in full, or None when IGDB has no game with that id."""
        game_id = _igdb_id(igdb_id)
        found = self._query(f"fields {','.join(GAME_FIELDS)}; where id = {game_id}; limit 1;", what=f"game {game_id}")
        return normalise_game(found[0]) if found else None

    # -- internals ---------------------------------------------------------------------------------------------

    def _query(self, body: str, *, what: str) -> list[dict[str, Any]]:
        """POST one Apicalypse query; a refused token is dropped and asked for again, once."""
        for attempt in (1, 2):
            token = self.auth.token()
            try:
                response = self.http.request("POST", GAMES_PATH, data=body.encode(), headers={
                    "Client-ID": self.auth.client_id, "Authorization": f"Bearer {token}",
                    "Accept": "application/json", "Content-Type": "text/plain"})
            except BadCredentials as exc:
                self.auth.forget(token)
                if attempt == 1:
                    continue
                failure: ProviderError = BadCredentials(self.provider, "IGDB refused the Twitch application's "
                                                                       f"token for {what} ({exc.message})")
                break
            return _games(response, self.provider)
        raise failure


def _games(response: requests.Response, provider: str) -> list[dict[str, Any]]:
    """IGDB answers a JSON array of games; anything else is a bad response."""
    try:
        body = response.json()
    except ValueError:
        raise BadResponse(provider, f"POST {GAMES_PATH}: the answer is not valid JSON") from None
    if not isinstance(body, list):
        raise BadResponse(provider, f"POST {GAMES_PATH}: the answer is not a JSON array")
    return [game for game in body if isinstance(game, dict)]


def apicalypse_string(text: str) -> str:
    """A quoted Apicalypse string: backslashes and double quotes escaped, control characters dropped, so a title
    can never end the string and add clauses of its own."""
    cleaned = "".join(ch for ch in text if ch.isprintable())
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _year_bounds(year: int) -> tuple[int, int]:
    if isinstance(year, bool) or not isinstance(year, int) or not 1950 <= year <= 2100:
        raise ValueError("a release year is a whole number between 1950 and 2100")
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    return int(start.timestamp()), int(end.timestamp())


def _igdb_id(value: int | str) -> int:
    return path_id(value, "an IGDB id")


# --- IGDB JSON → Candidate: the one place -------------------------------------------------------------------------


def normalise_game(data: dict[str, Any], *, platform: str | None = None) -> Candidate:
    """A game from /v4/games with GAME_FIELDS expanded. `platform`, when given, is the copy's platform (the one the
    search asked for); otherwise every platform IGDB lists is kept."""
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, "a game is not a JSON object")
    game_id = data.get("id")
    if isinstance(game_id, bool) or not isinstance(game_id, int) or game_id < 1:
        raise BadResponse(PROVIDER, "a game without a valid id")
    title = clean_text(data.get("name"))
    if title is None:
        raise BadResponse(PROVIDER, f"game {game_id} has no name")
    companies = [c for c in as_list(data.get("involved_companies")) if isinstance(c, dict)]
    developers = _company_names(companies, "developer")
    publishers = _company_names(companies, "publisher")
    platforms = _names(data.get("platforms"))
    details = {"platform": _joined([platform] if platform else platforms), "developer": _joined(developers)}
    return Candidate(
        provider=PROVIDER, provider_id=str(game_id), media_type="game", title=title,
        release_date=_release_date(data.get("first_release_date")), overview=clean_text(data.get("summary")),
        genres=_names(data.get("genres")), people=[("developer", name) for name in developers],
        identifiers={"igdb_id": str(game_id)}, cover_url=_cover_url(data.get("cover")),
        details={key: value for key, value in details.items() if value},
        extra={"publisher": publishers_text} if (publishers_text := _joined(publishers, limit=2000)) else {},
    )


def matching_platform(data: dict[str, Any], wanted: str) -> str | None:
    """The name of the game's platform that `wanted` names (IGDB's name or abbreviation, or part of the name)."""
    wanted = " ".join(wanted.split()).casefold()
    if not wanted:
        return None
    for entry in as_list(data.get("platforms")):
        if not isinstance(entry, dict) or not (name := clean_text(entry.get("name"))):
            continue
        abbreviation = (clean_text(entry.get("abbreviation")) or "").casefold()
        if wanted in (name.casefold(), abbreviation) or wanted in name.casefold():
            return name
    return None




def _names(value: Any) -> list[str]:
    return list(dict.fromkeys(n for e in as_list(value) if isinstance(e, dict) and (n := clean_text(e.get("name")))))


def _company_names(companies: list[dict[str, Any]], flag: str) -> list[str]:
    names = (clean_text(c["company"].get("name")) for c in companies
             if c.get(flag) is True and isinstance(c.get("company"), dict))
    return list(dict.fromkeys(n for n in names if n))


def _joined(names: list[str], *, limit: int = _FIELD_MAX) -> str | None:
    text = ", ".join(names)
    return text[:limit] if text else None


def _release_date(value: Any) -> date | None:
    """IGDB dates are Unix timestamps (seconds, UTC)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC).date()
    except (OverflowError, OSError, ValueError):
        return None


def _cover_url(cover: Any) -> str | None:
    image_id = cover.get("image_id") if isinstance(cover, dict) else None
    if not isinstance(image_id, str) or not _IMAGE_ID.fullmatch(image_id):
        return None
    return f"{IMAGE_BASE_URL}/{COVER_SIZE}/{image_id}.jpg"


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class IgdbProvider(ClientProvider):
    """IGDB as the enrichment service and the item form use it: games."""

    key = PROVIDER
    media_types = ("game",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By IGDB id only: IGDB knows no barcodes or ISBNs, so every catalog identifier gives []."""
        if kind != "igdb_id" or not str(value).strip().isdigit():
            return []
        found = self.client.game(value)
        return [found] if found else []

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """Games by title and year; a platform ranks the games on it first (see IgdbClient.search)."""
        if query.media_type not in (None, "game"):
            return []
        return self.client.search(query.title, year=query.year, platform=query.platform,
                                  limit=min(max(limit, 1), MAX_LIMIT))

    def details(self, candidate: Candidate) -> Candidate:
        """Search results are already complete (the same fields as a lookup by id)."""
        return candidate


def build(config: ProviderConfig, *, throttle: Throttle | None = None,
          token_base_url: str | None = None) -> IgdbProvider:
    """The provider for the saved IGDB card (its base URL, when set, serves both IGDB and the token: a local fake)."""
    return IgdbProvider(IgdbClient.from_config(config, throttle=throttle, token_base_url=token_base_url))


__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TOKEN_URL", "GAME_FIELDS", "PROVIDER", "IgdbClient", "IgdbProvider",
           "TwitchAuth", "apicalypse_string", "build", "clear_token_cache", "matching_platform", "normalise_game"]
