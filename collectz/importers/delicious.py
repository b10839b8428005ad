"""Delicious Library exports as Records: the XML export (an Apple property list) and the CSV export.

Both formats are read into one flat entry (the XML export's key names, e.g. `creatorsCompositeString`) and mapped
to a Record by `_record`, so the two agree. Both stream: memory stays flat however large the file.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree

from collectz.importers import Record, SourceError, media_type_of

# Years an item can have (the catalog's rule); a source date outside them is kept as text, not as the year.
PLAUSIBLE_YEARS = (1800, 2100)

_NOT_DELICIOUS = "This is not a Delicious Library export: "
_ENTITIES = ("This file declares XML entities, which collectZ does not read (a possible attack). "
             "Export the library again from Delicious Library and import that file.")
_SNIFF_BYTES = 64 * 1024

# Never fetch, never expand, never load a DTD: an export needs none of it.
_XML_OPTIONS: dict[str, Any] = {
    "resolve_entities": False, "no_network": True, "load_dtd": False, "dtd_validation": False, "huge_tree": False,
}

# Delicious's own type words (its `type`, Amazon's product group, the format), before `media_type_of`.
_DELICIOUS_TYPES: dict[str, str] = {
    "book": "book", "ebooks": "book", "kindle edition": "book", "mass market paperback": "book",
    "movie": "movie", "dvd": "movie", "blu-ray": "movie", "hd dvd": "movie", "vhs": "movie", "vhs tape": "movie",
    "tv show": "tv_series", "tv series": "tv_series",
    "music": "audio", "album": "audio", "cd": "audio", "audio cd": "audio",
    "game": "game", "video game": "game", "video games": "game",
    "software": "other", "gadget": "other", "kitchen": "other", "ce": "other", "toy": "other", "toys": "other",
    "electronics": "other",
}

# Who the generic "creators" are, per type (the XML export has no separate authors field for books).
_CREATOR_ROLE = {"book": "author", "comic_book": "writer", "audio": "artist", "game": "developer",
                 "movie": "director", "tv_series": "director", "tv_episode": "director", "other": "creator"}
_PUBLISHER_DETAIL = {"movie": "studio", "tv_series": "studio", "tv_episode": "studio", "audio": "label"}
_EDITION_IN_DETAILS = ("book", "movie")

# Lists of people, in the order records list them, and the role each has.
_PEOPLE_KEYS = (
    ("authorsCompositeString", "author"), ("directorsCompositeString", "director"),
    ("creatorsCompositeString", None), ("artistsCompositeString", "artist"), ("actorsCompositeString", "cast"),
    ("illustratorsCompositeString", "illustrator"), ("screenwritersCompositeString", "writer"),
    ("producersCompositeString", "producer"),
)
# Plain text kept as item metadata: entry key -> extra key. Lists are joined with "; ".
_EXTRA_TEXT = {
    "subtitle": "subtitle", "price": "purchase_price", "currentValue": "current_value",
    "ownerSingularString": "owner", "languagesCompositeString": "languages", "featuresCompositeString": "features",
    "countryCode": "country", "conditionSingularString": "condition",
    "audienceRecommendedAgeSingularString": "age_rating", "associatedURL": "associated_url",
    "deweyDecimal": "dewey_decimal", "libraryOfCongressCallNumber": "lc_call_number",
    "serialNumber": "serial_number", "cinematographersCompositeString": "cinematographers",
    "composersCompositeString": "composers", "conductorsCompositeString": "conductors",
}
_EXTRA_FLAGS = {"privateCollection": "private", "used": "used", "rare": "rare", "hasExperienced": "experienced"}
_COVER_KEYS = ("coverImageLargeURLString", "coverImageMediumURLString", "coverImageSmallURLString")


def detect(path: Path) -> str:
    """"xml" or "csv" for a Delicious Library export; SourceError for anything else."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF_BYTES)
    text = _decode_head(head)
    if not text.strip(" \t\r\n\ufeff"):
        raise SourceError(_NOT_DELICIOUS + "the file is empty.")
    if "\x00" in text or sum(c < " " and c not in "\t\r\n\f" for c in text) > len(text) // 100:
        raise SourceError(_NOT_DELICIOUS + "it is a binary file, not text.")
    start = text.lstrip(" \t\r\n\ufeff")
    if start.startswith("<"):
        if "<plist" in start or "<!DOCTYPE plist" in start:
            return "xml"
        raise SourceError(_NOT_DELICIOUS + "it is XML, but not the property list (plist) Delicious Library exports.")
    if start[:1] in ("{", "["):
        raise SourceError(_NOT_DELICIOUS + "it looks like JSON; Delicious Library exports XML or CSV.")
    _check_csv_header(_csv_header(text))
    return "csv"


def iter_records(path: Path) -> Iterator[Record]:
    """The records of an export of either format (the format is checked before this returns)."""
    return iter_xml_records(path) if detect(path) == "xml" else iter_csv_records(path)


# --- XML --------------------------------------------------------------------------------------------------------


def iter_xml_records(path: Path) -> Iterator[Record]:
    """Records of the XML export, one per top-level <dict>, streamed: each entry is dropped once mapped."""
    etree.clear_error_log()  # lxml's log is global: a stale entry must not explain this file's error
    depth = number = 0
    try:
        for event, elem in etree.iterparse(str(path), events=("start", "end"), **_XML_OPTIONS):
            if event == "start":
                depth += 1
                if depth == 1:
                    _check_root(elem)
                elif depth == 2 and elem.tag != "array":
                    raise SourceError(_NOT_DELICIOUS + f"the property list holds a <{elem.tag}>, not a list of items.")
                continue
            depth -= 1
            if depth != 2:  # not the end of a top-level entry (its contents are read with it)
                continue
            number += 1
            if elem.tag != "dict":
                raise SourceError(f"Entry {number} (line {elem.sourceline}) is a <{elem.tag}>, not an item <dict>.")
            record = _record(_plist_dict(elem), number)
            elem.clear(keep_tail=False)
            parent = elem.getparent()
            while elem.getprevious() is not None:
                del parent[0]
            yield record
    except etree.XMLSyntaxError as exc:
        raise SourceError(_malformed(exc)) from None


def _check_root(root: etree._Element) -> None:
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.entities()):
        raise SourceError(_ENTITIES)
    if root.tag != "plist":
        raise SourceError(_NOT_DELICIOUS + f"the XML's root element is <{root.tag}>, not <plist>.")


def _malformed(exc: etree.XMLSyntaxError) -> str:
    line, message = exc.lineno, exc.msg or str(exc)
    last = exc.error_log.last_error if exc.error_log else None
    if not line and last is not None and last.line:  # lxml sometimes reports line 0 with a generic message
        line, message = last.line, last.message
    message = re.sub(r",? line \d+, column \d+$", "", message.strip())
    return f"The XML is malformed at line {line}: {message}" if line else f"The XML is malformed: {message}"


def _plist_dict(elem: etree._Element) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    key = None
    for child in elem:
        if not isinstance(child.tag, str):  # a comment
            continue
        if child.tag == "key":
            key = (child.text or "").strip()
        elif key is not None:
            entry[key] = _plist_value(child)
            key = None
    return entry


def _plist_value(elem: etree._Element) -> Any:
    text = (elem.text or "").strip()
    try:
        if elem.tag == "integer":
            return int(text)
        if elem.tag == "real":
            return float(text)
        if elem.tag == "date":
            return datetime.fromisoformat(text)
    except ValueError:
        return text  # passed on as read: validation judges it
    if elem.tag in ("true", "false"):
        return elem.tag == "true"
    if elem.tag == "array":
        return "\n".join(v for v in (_text(_plist_value(c)) for c in elem if isinstance(c.tag, str)) if v)
    if elem.tag in ("dict", "data"):
        return None
    return elem.text or ""


# --- CSV --------------------------------------------------------------------------------------------------------

# CSV headers (casefolded, spaces collapsed) -> the XML export's key for the same value.
_CSV_COLUMNS: dict[str, str] = {
    **dict.fromkeys(("item type", "type", "media type", "kind"), "type"),
    "product group": "amazonProductGroup", "title": "title", "subtitle": "subtitle",
    **dict.fromkeys(("creator", "creators"), "creatorsCompositeString"),
    **dict.fromkeys(("author", "authors"), "authorsCompositeString"),
    **dict.fromkeys(("director", "directors"), "directorsCompositeString"),
    **dict.fromkeys(("actor", "actors", "cast"), "actorsCompositeString"),
    **dict.fromkeys(("artist", "artists"), "artistsCompositeString"),
    **dict.fromkeys(("illustrator", "illustrators"), "illustratorsCompositeString"),
    **dict.fromkeys(("screenwriter", "screenwriters"), "screenwritersCompositeString"),
    **dict.fromkeys(("producer", "producers"), "producersCompositeString"),
    "isbn": "isbn", "ean": "ean", "upc": "upc", "asin": "asin",
    **dict.fromkeys(("amazon link", "amazon url"), "amazonLink"),
    **dict.fromkeys(("edition", "editions"), "editionsCompositeString"),
    "format": "formatSingularString",
    **dict.fromkeys(("release date", "publish date", "publication date", "published"), "publishDate"),
    **dict.fromkeys(("creation date", "date added", "added"), "creationDate"),
    **dict.fromkeys(("purchase date", "date purchased"), "purchaseDate"),
    **dict.fromkeys(("price", "purchase price"), "price"),
    **dict.fromkeys(("current value", "value"), "currentValue"),
    **dict.fromkeys(("rating", "my rating"), "rating"),
    **dict.fromkeys(("notes", "note", "comments"), "notes"),
    "signed by": "signedBy", "signed": "isSigned",
    "location": "locationSingularString",
    **dict.fromkeys(("genre", "genres"), "genresCompositeString"),
    **dict.fromkeys(("publisher", "publishers", "studio", "label"), "publishersCompositeString"),
    "pages": "pages",
    **dict.fromkeys(("minutes", "length", "runtime", "running time"), "minutes"),
    **dict.fromkeys(("platform", "platforms"), "platformsCompositeString"),
    "series": "seriesSingularString",
    **dict.fromkeys(("number in series", "series number"), "numberInSeries"),
    "uuid": "uuidString", "owner": "ownerSingularString",
    **dict.fromkeys(("language", "languages"), "languagesCompositeString"),
    "features": "featuresCompositeString", "country": "countryCode",
    **dict.fromkeys(("private", "private collection"), "privateCollection"),
    "condition": "conditionSingularString",
    **dict.fromkeys(("cover url", "cover image url", "image url"), "coverImageLargeURLString"),
    **dict.fromkeys(("number of media", "discs"), "numberOfMedia"),
    "tracks": "tracksCompositeString",
}
_CSV_DATES = ("publishDate", "creationDate", "purchaseDate")
_ASIN_IN_LINK = re.compile(r"/(?:dp|gp/product|exec/obidos/ASIN|o/ASIN)/([A-Z0-9]{10})(?=[/?#&]|$)", re.IGNORECASE)


def iter_csv_records(path: Path) -> Iterator[Record]:
    """Records of the CSV export, one per row; a row without a UUID gets a content hash as its source_id."""
    encoding = _csv_encoding(path)
    with open(path, encoding=encoding, newline="") as f:
        head = f.read(_SNIFF_BYTES)
        f.seek(0)
        reader = csv.reader(f, delimiter=_delimiter(head))
        try:
            header = next(reader, [])
            keys = _check_csv_header(header)
            seen: dict[bytes, int] = {}
            line = reader.line_num + 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    yield _csv_record(keys, header, row, line, seen)
                line = reader.line_num + 1
        except csv.Error as exc:
            raise SourceError(f"The CSV is malformed at line {reader.line_num}: {exc}") from None


def _check_csv_header(header: list[str]) -> list[str | None]:
    """The entry key of each column; SourceError unless the header looks like Delicious Library's."""
    keys = [_CSV_COLUMNS.get(_column(name)) for name in header]
    if "title" not in keys or len({k for k in keys if k}) < 3:
        raise SourceError(_NOT_DELICIOUS + "it is neither the XML export nor a CSV export with Delicious "
                          "Library's columns (Title, Item Type, Creator, ISBN, ...).")
    return keys


def _csv_record(keys: list[str | None], header: list[str], row: list[str], line: int,
                seen: dict[bytes, int]) -> Record:
    entry: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for key, name, cell in zip(keys, header, row, strict=False):
        value = cell.strip()
        if not value:
            continue
        if key is None:  # a column Delicious added later or the user did: kept as metadata
            extra.setdefault(re.sub(r"\W+", "_", _column(name)).strip("_") or "column", value)
        elif key in _CSV_DATES:
            entry[key] = _parse_date(value) or value
        elif key.endswith("CompositeString") and key != "languagesCompositeString":
            # A list in one cell: one per line or separated by ";" (not "," for people: "Gates, Jr.").
            separators = r"[\n;,]" if key == "genresCompositeString" else r"[\n;]"
            entry[key] = "\n".join(re.split(separators, value))
        else:
            entry.setdefault(key, value)
    link = entry.pop("amazonLink", "")
    if match := _ASIN_IN_LINK.search(link):
        entry.setdefault("asin", match.group(1).upper())
    elif link:
        extra["amazon_link"] = link
    record = _record(entry, line, extra)
    if "source_id" not in record:
        record["source_id"] = _content_id(record, seen)
    return record


def _content_id(record: Record, seen: dict[bytes, int]) -> str:
    """A stable id for a row without a UUID: the same row in a re-export maps to the same item."""
    fields = [record.get(k, "") for k in ("title", "media_type", "isbn", "ean", "upc", "asin")]
    fields += [name for _, name in record.get("people", [])[:1]]
    basis = "\x1f".join(" ".join(str(v).casefold().split()) for v in fields)
    # An identity key, not a security measure: SHA-1 keeps ids stable with earlier imports.
    digest = hashlib.sha1(basis.encode(), usedforsecurity=False).digest()
    seen[digest] = seen.get(digest, 0) + 1
    return f"csv:{digest.hex()}#{seen[digest]}"


def _csv_encoding(path: Path) -> str:
    """utf-16 or utf-8 (BOM or valid throughout), else latin-1; read in chunks, never the whole file."""
    with open(path, "rb") as f:
        start = f.read(4)
        if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := f.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "utf-8-sig"


def _decode_head(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    return head.decode("utf-8", errors="replace")


def _delimiter(head: str) -> str:
    first = head.splitlines()[0] if head else ""
    return max((",", "\t", ";"), key=first.count)


def _csv_header(text: str) -> list[str]:
    try:
        return next(csv.reader(text.splitlines()[:1], delimiter=_delimiter(text)), [])
    except csv.Error:
        return []


def _column(name: str) -> str:
    return " ".join(name.replace("\ufeff", "").replace("_", " ").casefold().split())


# --- the mapping ------------------------------------------------------------------------------------------------


def _record(entry: dict[str, Any], line: int, extra: dict[str, str] | None = None) -> Record:
    """One Record from an entry keyed like the XML export (`extra`: metadata the caller already found)."""
    media_type = _media_type(entry)
    record: Record = {"line": line, "media_type": media_type}
    details: dict[str, str] = {}
    extra = dict(extra or {})
    _put(record, "source_id", _text(entry.get("uuidString")))
    for key in ("title", "isbn", "ean", "upc", "asin", "notes"):
        _put(record, key, _text(entry.get(key)))
    _put(record, "location", _text(entry.get("locationSingularString")))

    people = _people(entry, media_type)
    if people:
        record["people"] = people
    if genres := _unique(_lines(entry.get("genresCompositeString"))):
        record["genres"] = genres
    formats = _unique([_text(entry.get("formatSingularString")), _text(entry.get("explicitPhysicalFormat"))])
    if formats:
        record["formats"] = formats

    released = entry.get("publishDate")
    if isinstance(released, datetime | date):
        iso = _iso(released, nearest_day=True)
        if PLAUSIBLE_YEARS[0] <= int(iso[:4]) <= PLAUSIBLE_YEARS[1]:
            record["release_date"], record["year"] = iso, iso[:4]
        else:  # Amazon's placeholder dates (1609-01-01): kept as they were, not as the item's year
            _put(extra, "release_date_text", iso)
    elif re.fullmatch(r"\d{4}", _text(released)):
        record["year"] = _text(released)
    else:
        _put(extra, "release_date_text", _text(released))
    for key, name in (("purchaseDate", "purchase_date"), ("creationDate", "creation_date")):
        value = entry.get(key)
        _put(extra, name, _iso(value) if isinstance(value, datetime | date) else _text(value))

    _put(record, "runtime", _count(entry.get("minutes")))
    _put(record, "rating", _rating(entry.get("rating")))
    _put(record, "cover_url", next((u for u in (_text(entry.get(k)) for k in _COVER_KEYS) if u), ""))

    _put(details, _PUBLISHER_DETAIL.get(media_type, "publisher"), _joined(entry.get("publishersCompositeString")))
    edition = _joined(entry.get("editionsCompositeString"))
    _put(details if media_type in _EDITION_IN_DETAILS else extra, "edition", edition)
    _put(details, "pages", _count(entry.get("pages")))
    _put(details, "platform", _joined(entry.get("platformsCompositeString") or entry.get("platform")))
    _put(details, "series", _text(entry.get("seriesSingularString") or entry.get("series")))
    _put(details, "series_number", _count(entry.get("numberInSeries")))
    tracks = _lines(entry.get("tracksCompositeString"))
    if tracks and media_type == "audio":
        details["track_count"] = str(len(tracks))

    for key, name in _EXTRA_TEXT.items():
        _put(extra, name, _joined(entry.get(key)))
    for key, name in _EXTRA_FLAGS.items():
        if _truthy(entry.get(key)):
            extra[name] = "1"
    _put(extra, "number_of_media", _count(entry.get("numberOfMedia"), above=1))
    _put(extra, "tracks", "; ".join(tracks))
    players = _unique([_count(entry.get("minimumPlayers")), _count(entry.get("maximumPlayers"))])
    _put(extra, "players", "–".join(players))

    signed_by = _text(entry.get("signedBy"))
    if signed_by:
        record["signed_by"] = signed_by
    elif _truthy(entry.get("isSigned")):
        extra["signed"] = "1"  # the XML export has only a flag: who signed it is not known
    if details:
        record["details"] = details
    if extra:
        record["extra"] = extra
    return record


def _media_type(entry: dict[str, Any]) -> str:
    for key in ("type", "amazonProductGroup", "formatSingularString"):
        word = " ".join(_text(entry.get(key)).casefold().split())
        found = _DELICIOUS_TYPES.get(word) or media_type_of(word)
        if found:
            return found
    return "other"


def _people(entry: dict[str, Any], media_type: str) -> list[list[str]]:
    has_directors = bool(_lines(entry.get("directorsCompositeString")))
    people: list[list[str]] = []
    for key, role in _PEOPLE_KEYS:
        if role is None:  # creators: who they are depends on the type
            role = _CREATOR_ROLE[media_type]
            if role == "director" and has_directors:
                role = "creator"
        for name in _lines(entry.get(key)):
            if [role, name] not in people:
                people.append([role, name])
    return people


# --- values -----------------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, datetime | date):
        return _iso(value)
    return str(value).strip()


def _lines(value: Any) -> list[str]:
    return [s for s in (part.strip() for part in _text(value).splitlines()) if s]


def _joined(value: Any) -> str:
    return "; ".join(_unique(_lines(value)))


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _put(target: dict[str, Any], key: str, value: str) -> None:
    if value:
        target[key] = value


def _count(value: Any, above: int = 0) -> str:
    """A count as text, left out when it is Delicious's "none" (0); text that is no number is passed on."""
    text = _text(value)
    try:
        return text if float(text) > above else ""
    except ValueError:
        return text


def _truthy(value: Any) -> bool:
    return _text(value).casefold() in ("1", "yes", "y", "true", "x", "✓", "signed")


def _rating(value: Any) -> str:
    """Delicious rates 0-5 stars (0: not rated); records rate 0-10."""
    text = _text(value)
    if text and set(text) <= {"★", "☆"}:
        text = str(text.count("★"))
    try:
        stars = float(text)
    except ValueError:
        return text  # passed on as read: validation says what is wrong
    return f"{round(stars * 2, 2):g}" if stars else ""


def _iso(value: datetime | date, nearest_day: bool = False) -> str:
    """A date as YYYY-MM-DD. Delicious stores a publication date as local midnight in UTC (04:00Z in New York,
    22:00Z the day before in Berlin): rounding to the nearest day gives the date the user saw."""
    if isinstance(value, datetime):
        value = (value + timedelta(hours=12) if nearest_day else value).date()
    return value.isoformat()


_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}


def _parse_date(text: str) -> date | None:
    """The date formats a CSV export shows: 2006-10-02, 10/2/06, 10/02/2006, Oct 2, 2006, 2 October 2006."""
    text = " ".join(text.split())
    if m := re.match(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:$|[ T])", text):
        y, mo, d = int(m[1]), int(m[2]), int(m[3])
    elif m := re.fullmatch(r"(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})", text):
        mo, d, y = int(m[1]), int(m[2]), int(m[3])
        if "." in text or mo > 12:  # 2.10.2006 and 25/12/2006 are day first
            mo, d = d, mo
        if len(m[3]) == 2:
            y += 2000 if 2000 + y <= date.today().year + 1 else 1900
    elif m := re.fullmatch(r"([A-Za-z]{3,})\.? (\d{1,2}),? (\d{4})", text):
        mo, d, y = _MONTHS.get(m[1][:3].casefold(), 0), int(m[2]), int(m[3])
    elif m := re.fullmatch(r"(\d{1,2}) ([A-Za-z]{3,})\.?,? (\d{4})", text):
        d, mo, y = int(m[1]), _MONTHS.get(m[2][:3].casefold(), 0), int(m[3])
    else:
        return None
    try:
        return date(y, mo, d)
    except ValueError:
        return None
