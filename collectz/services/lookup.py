"""Look an item up while adding or editing it: by title, ISBN, barcode or IMDb id, or from a photo.

`find` asks the media type's providers (the registry decides which, from the integration cards and flags) and turns
every provider failure into a message: a lookup never breaks the form. `form_values` says what the add/edit form's
fields become when a candidate is applied; the person then reviews and saves as usual, so nothing here writes.
A photo is decoded locally (zxing-cpp) for a product barcode; without one, the optional cover-recognition card (an
OpenAI-compatible vision API) reads the title off the cover.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import warnings
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from collectz.config import current_settings, provider_urls
from collectz.models.media_types import MEDIA_TYPES, PERSON_ROLES, TMDB_TYPES, TYPE_DETAILS, TYPE_ROLES
from collectz.providers import registry
from collectz.providers.base import EAN13, IMDB_ID, ISBN13, MetadataProvider, SearchQuery
from collectz.providers.http import BadResponse, HttpClient, ProviderError
from collectz.providers.records import Candidate, SeasonInfo, jsonable
from collectz.services import flags, integrations
from collectz.services.errors import InvalidInput
from collectz.services.identifiers import IdentifierError, normalise_ean, normalise_isbn, parse_lookup

log = logging.getLogger("collectz.lookup")

TERM_MAX = 200
SEARCH_LIMIT = 10  # candidates asked of each provider
DETAILED = 3  # the first few light search results are completed, so the list can show their people
PHOTO_MAX_BYTES = 15 * 1024 * 1024
PHOTO_MAX_PIXELS = 50_000_000  # a 12 MP phone photo is far below; a decompression bomb is far above
PHOTO_CODES_MAX = 3
OCR_MAX_SIDE = 1024  # what a vision API needs to read a cover; less to upload
OCR_TIMEOUT = 30.0
PEOPLE_SHOWN = 4
TOKEN_SALT = "collectz.lookup.candidate"
_IMDB = re.compile(r"tt\d{7,10}")
_BRACKETS = re.compile(r"\s*[(\[][^)\]]*[)\]]")

PROVIDER_NAMES = {"tmdb": "TMDB", "openlibrary": "Open Library", "googlebooks": "Google Books",
                  "musicbrainz": "MusicBrainz", "discogs": "Discogs", "igdb": "IGDB", "metron": "Metron",
                  "gcd": "Grand Comics Database", "comicvine": "ComicVine", "upcitemdb": "UPCitemdb",
                  "barcodelookup": "Barcode Lookup", "covers": "Cover recognition"}
NOT_SET_UP = ("No lookup service is set up for {label}: an admin enables one under Admin → Integrations.")
TURNED_OFF = "Looking up {label} is turned off: an admin can turn on “{flag}” under Admin → Flags."
COVERS_NOT_SET_UP = ("Cover recognition is not set up: an admin can turn it on under Admin → Integrations → "
                     "Cover recognition.")
NO_BARCODE = "No barcode found in the photo. Take it again closer, in focus and in good light, or type the number."


class PhotoError(InvalidInput):
    """The uploaded file cannot be read as a photo (not an image, too large, damaged)."""


@dataclass
class LookupResult:
    """What a lookup found, and everything that went wrong on the way (shown, never raised)."""

    media_type: str
    term: str = ""
    kind: str = "title"  # title | isbn | barcode | imdb | photo
    candidates: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # provider failures, one sentence each
    notice: str | None = None  # nothing set up, nothing found, nothing typed
    codes: list[str] = field(default_factory=list)  # barcodes read from a photo
    guess: str | None = None  # the title cover recognition read

    def add(self, found: list[Candidate]) -> None:
        """Add candidates, each provider's item once (the first answer wins)."""
        seen = {(c.provider, c.provider_id, c.media_type) for c in self.candidates}
        for candidate in found:
            key = (candidate.provider, candidate.provider_id, candidate.media_type)
            if key not in seen:
                seen.add(key)
                self.candidates.append(candidate)


@dataclass(frozen=True)
class Shown:
    """A candidate as the list shows it: who answered, the people worth naming, and the token Apply sends back."""

    candidate: Candidate
    provider_name: str
    people: list[str]
    token: str


def provider_name(key: str) -> str:
    return PROVIDER_NAMES.get(key, key.replace("_", " ").title())


def type_label(media_type: str) -> str:
    """"movies", "books", "music"… for messages."""
    label = MEDIA_TYPES.get(media_type, media_type).lower()
    return label if label in ("music", "other") else label + "s"


# --- finding ------------------------------------------------------------------------------------------------------

def find(media_type: str, term: str, *, year: int | None = None) -> LookupResult:
    """Candidates for a title or an identifier (ISBN, EAN/UPC, IMDb id), best first, each with its provider."""
    term = " ".join((term or "").split())[:TERM_MAX]
    result = LookupResult(media_type=media_type, term=term)
    if media_type not in MEDIA_TYPES:
        result.notice = "Choose a media type first."
        return result
    if not term:
        result.notice = "Type a title, an ISBN or a barcode number to look up."
        return result
    providers, unavailable = _providers(media_type, result)
    identifiers = _identifiers(term)
    asked = bool(providers)
    if identifiers:
        kinds = {kind for kind, _value in identifiers}
        result.kind = "imdb" if IMDB_ID in kinds else "isbn" if ISBN13 in kinds else "barcode"
        for provider in providers:
            for kind, value in identifiers:
                result.add(_call(result, provider, lambda p=provider, k=kind, v=value: p.by_identifier(k, v)))
        ean = next((value for kind, value in identifiers if kind == EAN13), None)
        if ean and not result.candidates:
            asked = _by_barcode(result, ean, providers) or asked
    elif providers:
        _search(result, providers, SearchQuery(term, media_type=media_type, year=year))
    if not asked and not result.problems:
        result.notice = unavailable
    elif not result.candidates and not result.problems:
        result.notice = f"Nothing found for “{term}”."
    return result


def _providers(media_type: str, result: LookupResult) -> tuple[list[MetadataProvider], str]:
    """The type's usable providers, and what to say when there are none. A provider that cannot be built is a
    problem on the result, not a failure of the lookup."""
    label = type_label(media_type)
    flag = registry.TYPE_FLAGS.get(media_type)
    if flag is None:
        return [], f"No lookup service covers {label} yet: fill the form in by hand."
    if not flags.is_enabled(flag):
        return [], TURNED_OFF.format(label=label, flag=flags.REGISTRY[flag].label)
    found: list[MetadataProvider] = []
    for key in registry.chain(media_type):
        try:
            provider = registry.build(key)
        except ProviderError as exc:
            result.problems.append(f"{provider_name(key)}: {_sentence(exc.message)}")
            continue
        if provider is not None:
            found.append(provider)
    return found, NOT_SET_UP.format(label=label)


def _identifiers(term: str) -> list[tuple[str, str]]:
    """(kind, value) pairs a term stands for; [] for a title."""
    compact = term.replace(" ", "")
    if _IMDB.fullmatch(compact.lower()):
        return [(IMDB_ID, compact.lower())]
    codes = parse_lookup(term)
    if codes is None:
        return []
    pairs = []
    if codes.isbn13:
        pairs.append((ISBN13, codes.isbn13))
    if codes.ean13:
        pairs.append((EAN13, codes.ean13))
    return pairs


def _search(result: LookupResult, providers: list[MetadataProvider], query: SearchQuery) -> None:
    for provider in providers:
        found = _call(result, provider, lambda p=provider: p.search(query, limit=SEARCH_LIMIT))
        result.add(found)
    for index, candidate in enumerate(result.candidates[:DETAILED]):
        provider = next((p for p in providers if p.key == candidate.provider), None)
        if provider is not None and not candidate.people:
            full = _call(result, provider, lambda p=provider, c=candidate: [p.details(c)], quiet=True)
            if full:
                result.candidates[index] = full[0]


def _by_barcode(result: LookupResult, ean: str, providers: list[MetadataProvider]) -> bool:
    """Ask the barcode service; a product it names is then searched by title with the type's providers (TMDB has
    no barcodes, but knows the film a DVD's barcode names). False when no barcode service is set up."""
    try:
        barcode = registry.barcode_provider()
    except ProviderError as exc:
        result.problems.append(f"{provider_name('barcode')}: {_sentence(exc.message)}")
        return False
    if barcode is None:
        return False
    products = _call(result, barcode, lambda: barcode.by_identifier(EAN13, ean))
    result.add(products)
    if products and providers:
        title = _BRACKETS.sub("", products[0].title).strip()
        if title:
            _search(result, providers, SearchQuery(title, media_type=result.media_type, year=products[0].year))
    return True


def _call(result: LookupResult, provider: MetadataProvider, ask: Any, *, quiet: bool = False) -> list[Candidate]:
    """Run one provider call; a failure becomes a message on the result (or is only logged when `quiet`)."""
    name = provider_name(provider.key)
    try:
        return list(ask())
    except ProviderError as exc:
        message = f"{name}: {_sentence(exc.message)}"
    except ValueError as exc:  # a value the provider refused before asking (e.g. a malformed id)
        message = f"{name}: {_sentence(str(exc))}"
    except Exception as exc:  # a provider bug must not break the form; its text may hold a URL, so not logged
        log.error("lookup provider failed", extra={"fields": {"provider": provider.key,
                                                              "error": type(exc).__name__}})
        message = f"{name} failed unexpectedly ({type(exc).__name__})."
    if not quiet and message not in result.problems:
        result.problems.append(message)
    return []


def _sentence(message: str) -> str:
    message = (message or "").strip() or "failed"
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?", ")")) else message + "."


# --- showing and applying ----------------------------------------------------------------------------------------

def shown(result: LookupResult) -> list[Shown]:
    """The result's candidates as the list shows them."""
    return [Shown(c, provider_name(c.provider), _people_line(c), candidate_token(c)) for c in result.candidates]


def _people_line(candidate: Candidate) -> list[str]:
    """The first few names, in the roles the form asks for first (a film's director and cast, a book's author)."""
    names: list[str] = []
    for role in dict.fromkeys([*TYPE_ROLES.get(candidate.media_type, ()), *PERSON_ROLES]):
        names += [n for n in candidate.people_in(role) if n not in names]
    return names[:PEOPLE_SHOWN]


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_settings().SECRET_KEY, salt=TOKEN_SALT)


def candidate_token(candidate: Candidate) -> str:
    """The candidate, signed, for the Apply button (a tampered token is refused, not half-applied)."""
    data = asdict(candidate)
    data["seasons"] = [{**s, "episodes": []} for s in data["seasons"]]
    return _serializer().dumps(jsonable(data))




def candidate_from_token(token: str) -> Candidate:
    """The candidate an Apply button carried; InvalidInput when the token is missing, altered or stale."""
    try:
        data = _serializer().loads(token or "")
        release = data.pop("release_date", None)
        seasons = data.pop("seasons", [])
        data["people"] = [tuple(pair) for pair in data.get("people", [])]
        return Candidate(**data, release_date=date.fromisoformat(release) if release else None,
                         seasons=[SeasonInfo(**{k: v for k, v in s.items() if k != "episodes"}) for s in seasons])
    except (BadSignature, TypeError, ValueError, AttributeError):
        raise InvalidInput("That look-up result is no longer valid: look the item up again.") from None


def complete(candidate: Candidate) -> tuple[Candidate, list[str]]:
    """The candidate with everything its provider knows (a search result is light); on failure, the candidate as it
    is with the reason, so Apply still fills what the list showed."""
    if candidate.provider not in registry.PROVIDERS:
        return candidate, []
    result = LookupResult(media_type=candidate.media_type)
    try:
        provider = registry.build(candidate.provider)
    except ProviderError as exc:
        return candidate, [f"{provider_name(candidate.provider)}: {_sentence(exc.message)}"]
    if provider is None:
        return candidate, []
    full = _call(result, provider, lambda: [provider.details(candidate)])
    return (full[0] if full else candidate), result.problems


def form_values(candidate: Candidate) -> dict[str, str]:
    """What the add/edit form's fields become for this candidate, as form text (never the item's id or owner).

    Keys are the form's field names: title, year, people_<role>, the type's detail fields, isbn/ean/asin, tmdb_id…
    Values a form of the candidate's type has no field for are left out by the form itself.
    """
    c = candidate
    values: dict[str, Any] = {
        "media_type": c.media_type, "title": c.title, "original_title": c.original_title, "year": c.year,
        "release_date": c.release_date.isoformat() if c.release_date else None, "overview": c.overview,
        "runtime": c.runtime, "genres": ", ".join(dict.fromkeys(c.genres)),
    }
    for role in PERSON_ROLES:
        names = list(dict.fromkeys(c.people_in(role)))
        values[f"people_{role}"] = ("\n" if any("," in n for n in names) else ", ").join(names)
    wanted = {spec.name for spec in TYPE_DETAILS.get(c.media_type, ()) if spec.in_form}
    values.update({name: value for name, value in c.details.items() if name in wanted})
    values.update(_identifier_values(c))
    return {name: str(value) for name, value in values.items() if value not in (None, "")}


def _identifier_values(candidate: Candidate) -> dict[str, str]:
    ids = candidate.identifiers
    values: dict[str, str] = {}
    for name, field_name, normalise in (("isbn13", "isbn", normalise_isbn), ("isbn", "isbn", normalise_isbn),
                                        ("ean13", "ean", normalise_ean), ("upc", "ean", normalise_ean)):
        if ids.get(name) and field_name not in values:
            try:
                values[field_name] = normalise(ids[name])
            except IdentifierError:
                continue  # a provider's bad code is not worth a form error the person did not cause
    if ids.get("asin"):
        values["asin"] = ids["asin"]
    tmdb_id = ids.get("tmdb_id")
    if tmdb_id and str(tmdb_id).isdigit() and candidate.media_type in TMDB_TYPES:
        values["tmdb_id"] = str(tmdb_id)
        values["tmdb_media_type"] = TMDB_TYPES[candidate.media_type]
    return values


# --- photos --------------------------------------------------------------------------------------------------------

def read_photo(media_type: str, image_bytes: bytes) -> LookupResult:
    """A photo's barcode(s) looked up; without a barcode, the cover read by cover recognition when it is set up.
    Raises PhotoError when the file is not a readable image."""
    codes = decode_barcode(image_bytes)
    if not codes:
        if covers_configured():
            return recognise_cover(image_bytes, media_type=media_type)
        result = LookupResult(media_type=media_type, kind="photo", notice=NO_BARCODE)
        return result
    result = LookupResult(media_type=media_type, term=codes[0], kind="barcode", codes=codes)
    for code in codes[:PHOTO_CODES_MAX]:
        found = find(media_type, code)
        result.add(found.candidates)
        result.problems += [p for p in found.problems if p not in result.problems]
        if found.notice and not result.notice:
            result.notice = found.notice
    if result.candidates:
        result.notice = None
    return result


def _open_image(image_bytes: bytes) -> Any:
    """A Pillow image of the upload, fully decoded; PhotoError naming what is wrong."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not image_bytes:
        raise PhotoError("The photo is empty: choose or take a photo.", fields={"photo": "Choose a photo."})
    if len(image_bytes) > PHOTO_MAX_BYTES:
        raise PhotoError(f"The photo is too large (at most {PHOTO_MAX_BYTES // (1024 * 1024)} MB).",
                         fields={"photo": "Use a smaller photo."})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(image_bytes))
            if image.width * image.height > PHOTO_MAX_PIXELS:
                raise PhotoError("The photo has too many pixels to read.", fields={"photo": "Use a smaller photo."})
            image.load()
            return ImageOps.exif_transpose(image)
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError,
            Image.DecompressionBombWarning):
        raise PhotoError("That file is not a photo that can be read: use a JPEG, PNG, WebP or GIF image.",
                         fields={"photo": "Choose an image file."}) from None


def decode_barcode(image_bytes: bytes) -> list[str]:
    """Product barcodes (EAN-13, UPC-A, UPC-E) in a photo, decoded locally, as the catalog stores them: ISBN-13 for
    a book's barcode, else EAN-13 (a UPC-A gains a leading 0). [] when there is none; PhotoError for a bad file."""
    import zxingcpp

    image = _open_image(image_bytes)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    formats = (zxingcpp.BarcodeFormat.EAN13, zxingcpp.BarcodeFormat.UPCA, zxingcpp.BarcodeFormat.UPCE)
    codes: list[str] = []
    for barcode in zxingcpp.read_barcodes(image, formats=formats):
        code = _normalise_code(barcode.text, upc_e=barcode.format == zxingcpp.BarcodeFormat.UPCE)
        if code and code not in codes:
            codes.append(code)
    return codes


def _normalise_code(text: str, *, upc_e: bool = False) -> str | None:
    digits = re.sub(r"\D", "", text or "")
    if upc_e and len(digits) == 8:
        digits = expand_upc_e(digits)
    if len(digits) == 13 and digits[:3] in ("978", "979"):
        try:
            return normalise_isbn(digits)
        except IdentifierError:
            pass  # a 979-0 music number (ISMN) is an EAN, not an ISBN
    try:
        return normalise_ean(digits)
    except IdentifierError:
        return None


def expand_upc_e(code: str) -> str:
    """An 8-digit UPC-E (number system, six digits, check digit) as its 12-digit UPC-A."""
    system, body, check = code[0], code[1:7], code[7]
    last = body[5]
    if last in "012":
        core = body[:2] + last + "0000" + body[2:5]
    elif last == "3":
        core = body[:3] + "00000" + body[3:5]
    elif last == "4":
        core = body[:4] + "00000" + body[4]
    else:
        core = body[:5] + "0000" + last
    return system + core + check


# --- cover recognition ---------------------------------------------------------------------------------------------

def covers_configured() -> bool:
    return integrations.is_enabled("covers")


def recognise_cover(image_bytes: bytes, *, media_type: str = "other") -> LookupResult:
    """Read the title off a cover with the Cover recognition card's vision API, then `find` it. When the card is off
    the result says so; a failure of the API is a problem on the result."""
    result = LookupResult(media_type=media_type, kind="photo")
    if not covers_configured():
        result.notice = COVERS_NOT_SET_UP
        return result
    try:
        config = integrations.config_for("covers")
    except integrations.IntegrationProblem as exc:
        result.problems.append(exc.message)
        return result
    if not config.secret("api_key"):
        result.notice = COVERS_NOT_SET_UP
        return result
    picture = _cover_jpeg(image_bytes)
    try:
        title, year = _ask_vision(config, picture, media_type)
    except ProviderError as exc:
        result.problems.append(f"{provider_name('covers')}: {_scrub(_sentence(exc.message), config.secrets)}")
        return result
    if not title:
        result.notice = "No title could be read from the cover: type it instead."
        return result
    found = find(media_type, title, year=year)
    found.kind, found.guess = "photo", title
    return found


def _cover_jpeg(image_bytes: bytes) -> bytes:
    image = _open_image(image_bytes).convert("RGB")
    image.thumbnail((OCR_MAX_SIDE, OCR_MAX_SIDE))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def vision_http(config: Any, *, timeout: float | None = None) -> HttpClient:
    """The cover-recognition card's OpenAI-compatible API (the server's override address wins: it is trusted)."""
    base_url = provider_urls(current_settings().PROVIDER_URL_OVERRIDES).get("covers")
    return HttpClient("covers", base_url or config.base_url or "https://api.openai.com/v1",
                      allow_private=base_url is not None or config.allow_private,
                      timeout=timeout or config.timeout,
                      headers={"Authorization": f"Bearer {config.secret('api_key')}"})


def _ask_vision(config: Any, picture: bytes, media_type: str) -> tuple[str | None, int | None]:
    """One chat-completions call with the image; the model is asked for JSON with the title and year."""
    http = vision_http(config, timeout=max(config.timeout, OCR_TIMEOUT))
    prompt = (f"This is a photo of the cover of a {MEDIA_TYPES.get(media_type, 'item').lower()}. Read the title "
              "printed on it. Reply with JSON only, like {\"title\": \"…\", \"year\": 1999}; use null for a year "
              "that is not printed and for a title you cannot read.")
    image_url = "data:image/jpeg;base64," + base64.b64encode(picture).decode("ascii")
    body = {"model": str(config.settings.get("model") or "gpt-4o-mini"), "temperature": 0, "max_tokens": 100,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt},
                                                      {"type": "image_url", "image_url": {"url": image_url}}]}]}
    response = http.request("POST", "/chat/completions", json=body, headers={"Accept": "application/json"})
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise BadResponse("covers", "POST /chat/completions: the answer has no message") from None
    return parse_guess(content)


def parse_guess(content: Any) -> tuple[str | None, int | None]:
    """(title, year) from the model's reply: JSON (possibly in a code fence), else its first line as the title."""
    if isinstance(content, list):  # content parts
        content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    text = str(content or "").strip()
    fenced = re.search(r"\{.*\}", text, re.S)
    if fenced:
        try:
            data = json.loads(fenced.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict):
            title = data.get("title")
            year = data.get("year")
            title = " ".join(title.split())[:TERM_MAX] if isinstance(title, str) and title.strip() else None
            year = int(year) if isinstance(year, int | str) and str(year).isdigit() and 1800 <= int(year) <= 2100 \
                else None
            return title, year
    line = text.strip("`").splitlines()[0].strip() if text.strip("`").strip() else ""
    return (line[:TERM_MAX] or None), None


def _scrub(message: str, secrets: Any) -> str:
    for value in secrets.values():
        if value and len(value) >= 4:
            message = message.replace(value, "[redacted]")
    return message
