"""Generic CSV import: detect the file's encoding and dialect, map its columns to our fields, stream records.

Pure: a path in, `Record`s out (see `collectz.importers`). Values are passed on as stripped text; the service
validates them. Encodings: UTF-8 (with or without BOM), UTF-16/UTF-32 with a BOM, UTF-16 without a BOM (ASCII
text with every other byte NUL), else Windows-1252 ("Latin-1 fallback": a superset of Latin-1 for printable
text; the five bytes cp1252 leaves undefined decode as their Latin-1 control characters, so it never fails).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from collectz.importers import Record, SourceError

SAMPLE_SIZE = 64 * 1024
LATIN1_FALLBACK = "cp1252"
_DELIMITERS = ",;\t"
_SPLIT = re.compile(r"[;|]")


@dataclass(frozen=True)
class CsvField:
    """One of our import columns: its template header `name`, a label, header aliases and a help line."""

    name: str
    label: str
    aliases: tuple[str, ...]
    help: str


@dataclass
class CsvLayout:
    """What `inspect` found: the text encoding, the delimiter and the header names (blank ones as "Column N")."""

    encoding: str
    delimiter: str
    columns: list[str]


def _f(name: str, label: str, aliases: str, help: str) -> CsvField:
    return CsvField(name, label, tuple(a.strip() for a in aliases.split(",") if a.strip()), help)


FIELDS: tuple[CsvField, ...] = (
    _f("import_ref", "Import ref", "Import Ref, ImportRef, ID, Item ID, Book ID, Ref, Reference, UUID",
       "Your own stable id for the row: importing the file again updates the same items."),
    _f("media_type", "Media type", "Type, Item Type, Media Type, Kind, Media",
       "movie, tv_series, tv_episode, book, audio, game, comic_book or other (words like Film, TV, Music work)."),
    _f("title", "Title", "Title, Name, Item Title, Movie Title, Book Title, Album Title, Game Title",
       "The item's title (required)."),
    _f("original_title", "Original title", "Original Title, Original Name", "The title in its original language."),
    _f("year", "Year", "Year, Release Year, Publication Year, Year Published, Production Year", "Four digits."),
    _f("release_date", "Release date",
       "Release Date, Publish Date, Publication Date, Date Published, Published, Air Date, First Aired",
       "YYYY-MM-DD."),
    _f("overview", "Overview", "Overview, Description, Plot, Summary, Synopsis", "A short description."),
    _f("formats", "Formats", "Format, Formats, Format(s), Media Format, Binding",
       "Blu-ray, DVD, Paperback, Vinyl…; separate several with ; or |."),
    _f("genres", "Genres", "Genre, Genres, Genre(s)", "Separate several with ; or |."),
    _f("rating", "Rating", "Rating, My Rating, Personal Rating, Score", "0 to 10."),
    _f("copies", "Copies", "Copies, Copy, Quantity, Qty, Number of Copies, Owned Copies", "How many you own."),
    _f("location", "Location", "Location, Shelf, Storage, Storage Location, Place, Box", "Where it is kept."),
    _f("notes", "Notes", "Notes, Note, Comments, Comment, Remarks, Private Notes, Personal Notes", "Free text."),
    _f("runtime", "Runtime", "Runtime, Running Time, Duration, Runtime (min), Minutes", "In minutes."),
    _f("isbn", "ISBN", "ISBN13, ISBN-13, ISBN, ISBN10, ISBN-10", "A book's ISBN-10 or ISBN-13."),
    _f("ean", "EAN", "EAN, EAN13, EAN-13, Barcode, EAN/ISBN13, GTIN", "The 13-digit barcode."),
    _f("upc", "UPC", "UPC, UPC-A, UPC/ISBN10", "The 12-digit barcode."),
    _f("asin", "ASIN", "ASIN, Amazon ID", "Amazon's 10-character id."),
    _f("tmdb_id", "TMDb id", "TMDb ID, TMDB, TheMovieDB ID", "The id on themoviedb.org."),
    _f("authors", "Authors", "Author, Authors, Author(s), Written By", "Separate several with ; or |."),
    _f("directors", "Directors", "Director, Directors, Director(s), Directed By", "Separate several with ; or |."),
    _f("cast", "Cast", "Cast, Actors, Actor, Actor(s), Starring, Cast Members", "Separate several with ; or |."),
    _f("writers", "Writers", "Writer, Writers, Writer(s), Screenwriter, Screenwriters",
       "Separate several with ; or |."),
    _f("artists", "Artists", "Artist, Artists, Artist(s), Album Artist, Band, Performer, Performers",
       "Separate several with ; or |."),
    _f("illustrators", "Illustrators", "Illustrator, Illustrators, Illustrator(s)", "Separate several with ; or |."),
    _f("inkers", "Inkers", "Inker, Inkers, Inker(s)", "Separate several with ; or |."),
    _f("colorists", "Colorists", "Colorist, Colorists, Colorist(s), Colourist, Colourists",
       "Separate several with ; or |."),
    _f("creators", "Creators", "Creator, Creators, Creator(s), Created By, Maker", "Separate several with ; or |."),
    _f("developers", "Developers", "Developer, Developers, Developer(s)", "Separate several with ; or |."),
    _f("producers", "Producers", "Producer, Producers, Producer(s)", "Separate several with ; or |."),
    _f("publisher", "Publisher", "Publisher, Publishers, Publisher(s), Imprint", "Books and comics."),
    _f("edition", "Edition", "Edition", "Books and movies."),
    _f("series", "Series", "Series, Series Name", "Books and comics."),
    _f("series_number", "Number in series", "Series Number, Series No, Series #, Number in Series, Book Number",
       "Books."),
    _f("pages", "Pages", "Pages, Page Count, Number of Pages, No. of Pages, Num Pages", "Books and comics."),
    _f("platform", "Platform", "Platform, Platforms, System, Console", "Games."),
    _f("studio", "Studio", "Studio, Studios, Production Company", "Movies."),
    _f("network", "Network", "Network, Channel, Broadcaster", "TV series."),
    _f("label", "Label", "Label, Record Label", "Music."),
    _f("region", "Region", "Region, Region Code", "Games."),
    _f("issue", "Issue", "Issue, Issue Number, Issue No, Issue #", "Comics."),
    _f("volume", "Volume", "Volume, Vol", "Comics."),
    _f("resolution", "Resolution", "Resolution, Video Resolution", "Movies: 1080p, 4K…"),
    _f("series_title", "Series title", "Series Title, Show, Show Title, TV Show", "TV episodes: the show."),
    _f("season", "Season", "Season, Season Number, Season No", "TV episodes."),
    _f("episode", "Episode", "Episode, Episode Number, Episode No", "TV episodes."),
    _f("track_count", "Tracks", "Tracks, Track Count, Number of Tracks", "Music."),
    _f("cover_date", "Cover date", "Cover Date", "Comics."),
    _f("kind_of_item", "Kind of item", "Kind of Item, Item Kind", "Other items: board game, poster…"),
    _f("cover_url", "Cover URL", "Cover URL, Cover, Cover Image, Image, Image URL", "An image to fetch."),
    _f("signed_by", "Signed by", "Signed By, Autographed By, Signature", "Who signed your copy."),
    _f("purchase_date", "Purchase date", "Purchase Date, Purchased, Date Purchased, Purchased On, Acquired",
       "YYYY-MM-DD."),
    _f("purchase_price", "Purchase price", "Purchase Price, Price, Price Paid, Paid, Cost", "What you paid."),
    _f("current_value", "Current value", "Current Value, Value, Market Value", "What it is worth now."),
    _f("condition", "Condition", "Condition, Grade", "Mint, good, worn…"),
    _f("languages", "Languages", "Language, Languages, Language(s)", "Kept as metadata."),
    _f("tags", "Tags", "Tags, Tag, Keywords", "Kept as metadata."),
    _f("added_date", "Date added", "Added, Date Added, Added Date, Added On", "Kept as metadata."),
    _f("owner", "Owner", "Owner, Owned By", "Kept as metadata."),
    _f("review", "Review", "Review, My Review", "Kept as metadata."),
)

_BY_NAME = {field.name: field for field in FIELDS}
_PEOPLE = {
    "authors": "author", "directors": "director", "cast": "cast", "writers": "writer", "artists": "artist",
    "illustrators": "illustrator", "inkers": "inker", "colorists": "colorist", "creators": "creator",
    "developers": "developer", "producers": "producer",
}
_LISTS = ("formats", "genres")
_DETAILS = {
    **{name: name for name in (
        "publisher", "edition", "series", "series_number", "pages", "platform", "studio", "network", "label",
        "region", "issue", "volume", "resolution", "series_title", "season", "episode", "track_count", "cover_date",
    )},
    "kind_of_item": "kind",
}
_EXTRA = ("purchase_date", "purchase_price", "current_value", "condition", "languages", "tags", "added_date",
          "owner", "review")

# One example row per media type, keyed by field name; every other cell is left empty.
_EXAMPLES: tuple[dict[str, str], ...] = (
    {"import_ref": "example-movie-1", "media_type": "movie", "title": "Amélie",
     "original_title": "Le Fabuleux Destin d'Amélie Poulain", "year": "2001", "release_date": "2001-04-25",
     "overview": "A shy waitress in Montmartre decides to change the lives of those around her.",
     "formats": "Blu-ray", "genres": "Comedy; Romance", "rating": "8", "copies": "1", "location": "Living room",
     "runtime": "122", "ean": "3249211630454", "tmdb_id": "194", "directors": "Jean-Pierre Jeunet",
     "cast": "Audrey Tautou; Mathieu Kassovitz", "studio": "UGC", "resolution": "1080p",
     "purchase_date": "2019-11-02", "purchase_price": "9.99"},
    {"import_ref": "example-tv-1", "media_type": "tv_series", "title": "Twin Peaks", "year": "1990",
     "overview": "An FBI agent investigates the murder of a homecoming queen.", "formats": "DVD",
     "genres": "Drama; Mystery", "rating": "9", "copies": "1", "location": "Living room", "runtime": "47",
     "cast": "Kyle MacLachlan; Sheryl Lee", "creators": "Mark Frost; David Lynch", "network": "ABC"},
    {"import_ref": "example-episode-1", "media_type": "tv_episode", "title": "Zen, or the Skill to Catch a Killer",
     "year": "1990", "release_date": "1990-04-19", "rating": "9", "runtime": "47", "directors": "David Lynch",
     "cast": "Kyle MacLachlan; Michael Ontkean", "writers": "Mark Frost; David Lynch",
     "series_title": "Twin Peaks", "season": "1", "episode": "3"},
    {"import_ref": "example-book-1", "media_type": "book", "title": "The Hobbit", "year": "1937",
     "overview": "Bilbo Baggins is swept into a quest to reclaim a dragon's treasure.", "formats": "Paperback",
     "genres": "Fantasy", "rating": "10", "copies": "1", "location": "Study, shelf 2",
     "notes": "Gift from \"Aunt May\"", "isbn": "978-0-261-10221-7", "authors": "Tolkien, J.R.R.",
     "publisher": "HarperCollins", "edition": "Paperback", "series": "Middle-earth", "series_number": "1",
     "pages": "310", "languages": "English", "purchase_date": "2023-05-14", "purchase_price": "8.99"},
    {"import_ref": "example-audio-1", "media_type": "audio", "title": "Kind of Blue", "year": "1959",
     "formats": "Vinyl", "genres": "Jazz", "rating": "10", "copies": "1", "location": "Record shelf",
     "runtime": "46", "upc": "074644065923", "artists": "Miles Davis", "label": "Columbia", "track_count": "5",
     "condition": "Very good"},
    {"import_ref": "example-game-1", "media_type": "game", "title": "The Legend of Zelda: Breath of the Wild",
     "year": "2017", "release_date": "2017-03-03", "formats": "Cartridge", "genres": "Action-adventure",
     "rating": "9.5", "copies": "1", "location": "TV cabinet", "ean": "0045496590567",
     "developers": "Nintendo EPD", "platform": "Nintendo Switch", "region": "PAL"},
    {"import_ref": "example-comic-1", "media_type": "comic_book", "title": "At Midnight, All the Agents",
     "year": "1986", "formats": "Single issue", "genres": "Superhero", "rating": "10", "copies": "1",
     "location": "Long box A", "writers": "Alan Moore", "artists": "Dave Gibbons", "colorists": "John Higgins",
     "publisher": "DC Comics", "series": "Watchmen", "issue": "1", "volume": "1", "cover_date": "1986-09",
     "pages": "32", "current_value": "40"},
    {"import_ref": "example-other-1", "media_type": "other", "title": "Catan", "year": "1995", "genres": "Strategy",
     "rating": "7", "copies": "1", "location": "Games cupboard", "ean": "3760080499046",
     "creators": "Klaus Teuber", "kind_of_item": "Board game", "notes": "Base game, 3-4 players"},
)


def template_csv() -> str:
    """The downloadable template: the header of field names and one example row per media type."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(field.name for field in FIELDS)
    for example in _EXAMPLES:
        writer.writerow(example.get(field.name, "") for field in FIELDS)
    return out.getvalue()


# --- Reading the file -----------------------------------------------------------------------------------------

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# Magic numbers of files people pick by mistake: images, PDF, archives (xlsx is a zip), old Excel, databases.
_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"\xd0\xcf\x11\xe0", b"\x1f\x8b",
          b"SQLite format 3", b"BZh", b"7z\xbc\xaf", b"Rar!", b"bplist")
_BINARY = "This is not a CSV file: it looks like binary data."
_SPREADSHEET_HINT = " If it is a spreadsheet, save it as CSV first."


def _fallback_errors(error: UnicodeDecodeError) -> tuple[str, int]:
    """Decode the bytes cp1252 leaves undefined as their Latin-1 characters."""
    return error.object[error.start:error.end].decode("latin-1"), error.end


codecs.register_error("collectz-latin1", _fallback_errors)


def _errors_for(encoding: str) -> str:
    return "collectz-latin1" if encoding == LATIN1_FALLBACK else "strict"


def _utf16_without_bom(sample: bytes) -> str | None:
    """utf-16-le/-be when ASCII text has every other byte NUL, else None."""
    head = sample[:4096]
    pairs = len(head) // 2
    if pairs < 2:
        return None
    even_nul = head[0::2][:pairs].count(0)
    odd_nul = head[1::2][:pairs].count(0)
    if odd_nul >= pairs * 0.9 and even_nul <= pairs * 0.1:
        return "utf-16-le"
    if even_nul >= pairs * 0.9 and odd_nul <= pairs * 0.1:
        return "utf-16-be"
    return None


def _is_utf8(sample: bytes, complete: bool) -> bool:
    """True if the sample is UTF-8; a character cut at the end of an incomplete sample is fine."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _detect_encoding(sample: bytes, complete: bool) -> str:
    for bom, encoding in _BOMS:
        if sample.startswith(bom):
            return encoding
    if sample.startswith(_MAGIC):
        hint = _SPREADSHEET_HINT if sample.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")) else ""
        raise SourceError(_BINARY + hint)
    utf16 = _utf16_without_bom(sample)
    if utf16:
        return utf16
    if b"\x00" in sample:
        raise SourceError(_BINARY)
    return "utf-8" if _is_utf8(sample, complete) else LATIN1_FALLBACK


def _decode_sample(sample: bytes, encoding: str) -> str:
    text = codecs.getincrementaldecoder(encoding)(errors=_errors_for(encoding)).decode(sample, final=False)
    controls = sum(1 for ch in text if ch < " " and ch not in "\t\r\n\f\v")
    if "\x00" in text or controls > max(2, len(text) // 100):
        raise SourceError(_BINARY)
    return text


def _check_not_markup(text: str) -> None:
    head = text.lstrip().lower()
    if head.startswith("<") and ">" in head[:1000]:
        raise SourceError("This looks like an XML file, not CSV.")


def _first_lines(text: str, count: int = 50) -> str:
    """The sample's first complete lines (a cut last line would skew the sniffer)."""
    lines = text.splitlines(keepends=True)
    if len(lines) > 1 and not lines[-1].endswith(("\n", "\r")):
        lines.pop()
    return "".join(lines[:count])


def _header_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def _sniff_delimiter(text: str) -> str:
    """Comma, semicolon or tab: the sniffer's choice if the header has it, else the one the header has most.

    A header with none of them is a one-column file: tab then, as titles rarely hold one but often a comma."""
    header = _header_line(text)
    counts = {d: header.count(d) for d in _DELIMITERS}
    try:
        sniffed = csv.Sniffer().sniff(_first_lines(text), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        sniffed = None
    if sniffed and counts.get(sniffed):
        return sniffed
    best = max(_DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else "\t"


def _csv_problem(exc: csv.Error) -> str:
    """The csv module's complaint in plain words."""
    text = str(exc)
    if "unexpected end of data" in text:
        return 'a quoted value is never closed (a " is missing)'
    if "expected after" in text:
        return 'a " inside a quoted value must be written twice ("")'
    if "field larger than field limit" in text:
        return "a value is too long"
    return text


def _rows(path: Path, layout: CsvLayout) -> Iterator[tuple[int, list[str]]]:
    """(line the row starts on, cells) for every row, the header included; file errors as SourceError."""
    errors = _errors_for(layout.encoding)
    with open(path, encoding=layout.encoding, errors=errors, newline="") as stream:
        reader = csv.reader(stream, delimiter=layout.delimiter, quotechar='"', doublequote=True, strict=True)
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise SourceError(f"Line {start} is not valid CSV: {_csv_problem(exc)}.") from None
            except UnicodeDecodeError:
                raise SourceError(
                    f"Near line {start}: the text is not valid {layout.encoding}. Save the file as UTF-8 and try again."
                ) from None
            yield start, row


def _is_blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _looks_like_data(name: str) -> bool:
    return bool(name) and re.fullmatch(r"[\d\s.,:/+-]+", name) is not None


def _header(path: Path, layout: CsvLayout) -> list[str]:
    with closing(_rows(path, layout)) as rows:
        row = next((cells for _, cells in rows if not _is_blank(cells)), None)
    if row is None:
        raise SourceError("The file is empty.")
    columns = [cell.strip() or f"Column {i}" for i, cell in enumerate(row, start=1)]
    data = next((name for name in columns if _looks_like_data(name)), None)
    if data is not None:
        raise SourceError(f'The first line must name the columns (title, year, …), but it holds data: "{data}".')
    if len(columns) == 1 and "title" not in auto_mapping(columns):
        raise SourceError(
            f'Only one column was found, "{columns[0][:60]}", and it is not a title. The first line must name the '
            "columns, separated by commas, semicolons or tabs."
        )
    return columns


def inspect(path: Path) -> CsvLayout:
    """Detect the encoding and delimiter and read the header; SourceError if this is not a usable CSV file."""
    with open(path, "rb") as raw:
        sample = raw.read(SAMPLE_SIZE)
        complete = not raw.read(1)
    encoding = _detect_encoding(sample, complete)
    text = _decode_sample(sample, encoding).lstrip("\ufeff")
    if not text.strip():
        raise SourceError("The file is empty.")
    _check_not_markup(text)
    layout = CsvLayout(encoding=encoding, delimiter=_sniff_delimiter(text), columns=[])
    layout.columns = _header(path, layout)
    return layout


# --- Mapping columns to fields ----------------------------------------------------------------------------------


def _norm(name: str) -> str:
    """Header key: case, spaces and punctuation ignored; '#' reads as 'no' ("Issue #" = "Issue No")."""
    return re.sub(r"[\W_]+", "", name.casefold().replace("#", "no"))


def auto_mapping(columns: list[str]) -> dict[str, str]:
    """Our field name -> the file's column, from known aliases; each column and each field used at most once."""
    keys = [_norm(column) for column in columns]
    candidates = []
    for field_index, field in enumerate(FIELDS):
        # The aliases' order is the preference ("ISBN13" before "ISBN"); the name and label come last.
        for rank, alias in enumerate((*field.aliases, field.name, field.label)):
            target = _norm(alias)
            candidates += [(rank, field_index, col) for col, key in enumerate(keys) if key and key == target]
    mapping: dict[str, str] = {}
    used: set[int] = set()
    for _, field_index, col in sorted(candidates):
        name = FIELDS[field_index].name
        if name not in mapping and col not in used:
            mapping[name] = columns[col]
            used.add(col)
    return {field.name: mapping[field.name] for field in FIELDS if field.name in mapping}


# --- Records ----------------------------------------------------------------------------------------------------


def _resolve(mapping: dict[str, str], columns: list[str]) -> dict[str, int]:
    """Field name -> column index; SourceError for a missing title or a column the file does not have."""
    resolved: dict[str, int] = {}
    for name, column in mapping.items():
        if not column:
            continue
        if name not in _BY_NAME:
            raise SourceError(f'"{name}" is not a field this importer knows.')
        if column not in columns:
            raise SourceError(f'The file has no column "{column}".')
        resolved[name] = columns.index(column)
    if "title" not in resolved:
        raise SourceError("Choose which column holds the title.")
    return resolved


def _unquoted(value: str) -> str:
    """A stripped cell that starts with = or ' as it was meant (most cells do not: `_record` asks only for those)."""
    # Excel's way to keep leading zeros: ="0261102214".
    if len(value) > 3 and value.startswith('="') and value.endswith('"'):
        value = value[2:-1].strip()
    # A quote that kept a spreadsheet from reading the cell as a formula (our exports write "'-ism"): not text.
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@":
        value = value[1:]
    return value


def _split(value: str) -> list[str]:
    return list(dict.fromkeys(part.strip() for part in _SPLIT.split(value) if part.strip()))


def _record(line: int, row: list[str], fields: dict[str, int]) -> Record:
    record: Record = {"line": line}
    width = len(row)
    for name, index in fields.items():
        value = row[index].strip() if index < width else ""
        if not value:
            continue
        if value[0] in "='":
            value = _unquoted(value)
            if not value:  # ="" : an empty cell
                continue
        if name == "import_ref":
            record["source_id"] = value
        elif name in _PEOPLE:
            record.setdefault("people", []).extend([_PEOPLE[name], person] for person in _split(value))
        elif name in _LISTS:
            record[name] = _split(value)
        elif name in _DETAILS:
            record.setdefault("details", {})[_DETAILS[name]] = value
        elif name in _EXTRA:
            record.setdefault("extra", {})[name] = value
        else:
            record[name] = value
    return record


def _records(path: Path, layout: CsvLayout, fields: dict[str, int]) -> Iterator[Record]:
    with closing(_rows(path, layout)) as rows:
        header_seen = False
        for line, row in rows:
            if _is_blank(row):
                continue
            if header_seen:
                yield _record(line, row, fields)
            header_seen = True


def iter_records(path: Path, mapping: dict[str, str], layout: CsvLayout | None = None) -> Iterator[Record]:
    """Stream one Record per non-empty data row; the mapping is checked now, the file is read as you iterate."""
    layout = layout or inspect(path)
    # Fields in template order, so people and lists come out in a stable order.
    resolved = _resolve(mapping, layout.columns)
    fields = {field.name: resolved[field.name] for field in FIELDS if field.name in resolved}
    return _records(path, layout, fields)


def preview(path: Path, mapping: dict[str, str], limit: int = 20) -> list[Record]:
    """The first `limit` records, as `iter_records` yields them."""
    with closing(iter_records(path, mapping)) as records:
        return list(islice(records, limit))
