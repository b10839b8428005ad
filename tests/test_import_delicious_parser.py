"""The Delicious Library parser: the shared 268-entry XML export, a hand-written CSV export, hostile files."""

from __future__ import annotations

import json
import plistlib
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from collectz.importers import SourceError
from collectz.importers.delicious import detect, iter_csv_records, iter_records, iter_xml_records
from tests.conftest import PROJECT_ROOT, needs_shared

DATA = Path(__file__).parent / "data" / "delicious"
PASSWD = Path("/etc/passwd")


@pytest.fixture(scope="module")
def export() -> Path:
    return needs_shared("fixtures", "delicious", "library-plist.xml")


@pytest.fixture(scope="module")
def source(export: Path) -> list[dict]:
    """The export as read by the standard library's plist reader: the oracle the parser is checked against."""
    with open(export, "rb") as f:
        return plistlib.load(f)


@pytest.fixture(scope="module")
def records(export: Path) -> list[dict]:
    return list(iter_records(export))


def by_uuid(records: list[dict], source_id: str) -> dict:
    return next(r for r in records if r.get("source_id") == source_id)


def lines(value: str) -> list[str]:
    return [s.strip() for s in value.splitlines() if s.strip()]


# --- the shared XML export ----------------------------------------------------------------------------------------


def test_every_entry_of_the_export_becomes_a_record(export, records, source):
    assert detect(export) == "xml"
    assert len(records) == len(source) == 268
    assert [r["line"] for r in records] == list(range(1, 269))
    assert [r["source_id"] for r in records] == [e["uuidString"] for e in source]
    assert len({r["source_id"] for r in records}) == 268
    assert [r["title"] for r in records] == [e["title"].strip() for e in source]


def test_types_are_mapped_and_nothing_is_skipped(records, source):
    assert Counter(r["media_type"] for r in records) == {"book": 260, "movie": 5, "other": 3}
    for entry, record in zip(source, records, strict=True):
        expected = {"Book": "book", "Movie": "movie", "Gadget": "other", None: "other"}[entry.get("type")]
        assert record["media_type"] == expected, entry["title"]
    untyped = by_uuid(records, "2CE340CF-AE5D-4E76-8060-1BD1262830B4")  # no type, group or format at all
    assert untyped["media_type"] == "other"
    assert untyped["people"] == [["creator", "Alberto Korda"]]


def test_entries_sharing_an_isbn_both_keep_it(records):
    shared = [r for r in records if r.get("isbn") == "0802133630"]
    assert {r["source_id"] for r in shared} == {
        "AD328E98-D958-4BEE-B247-1AAE7D3B3198", "08C70120-D241-4F81-AD56-B15A07D95B23"}


def test_values_match_the_source_entry_by_entry(records, source):
    for entry, record in zip(source, records, strict=True):
        for key in ("isbn", "ean", "upc", "asin"):
            assert record.get(key, "") == entry.get(key, "").strip(), (entry["title"], key)
        assert record.get("location", "") == entry["locationSingularString"].strip()
        assert record.get("genres", []) == lines(entry["genresCompositeString"])
        names = lines(entry["creatorsCompositeString"]) + lines(entry["actorsCompositeString"])
        names += lines(entry["illustratorsCompositeString"])
        assert sorted(name for _, name in record.get("people", [])) == sorted(names)
        cover = next((entry[k] for k in ("coverImageLargeURLString", "coverImageMediumURLString",
                                         "coverImageSmallURLString") if entry[k]), "")
        assert record.get("cover_url", "") == cover
        assert record.get("formats", []) == ([entry["formatSingularString"]] if entry["formatSingularString"] else [])
        assert record["extra"]["purchase_date"] == entry["purchaseDate"].date().isoformat()
        if "publishDate" in entry and entry["publishDate"].year < 1800:  # Amazon's placeholder dates (1609-01-01)
            assert "release_date" not in record and "year" not in record
            assert record["extra"]["release_date_text"] == entry["publishDate"].date().isoformat()
        elif "publishDate" in entry:  # stored as local midnight in UTC (04:00Z/05:00Z here): the date is the same
            assert record["release_date"] == entry["publishDate"].date().isoformat()
            assert record["year"] == str(entry["publishDate"].year)
        else:
            assert "release_date" not in record and "year" not in record
        assert record.get("rating") == ({0.0: None, 4.0: "8", 5.0: "10"}[entry["rating"]])
        assert record.get("details", {}).get("pages") == (str(entry["pages"]) if entry["pages"] else None)
        assert record.get("runtime") == (str(entry["minutes"]) if entry["minutes"] else None)
        assert ("private" in record.get("extra", {})) == bool(entry["privateCollection"])


def test_values_are_stripped_non_empty_strings(records):
    for record in records:
        for key, value in record.items():
            if key == "line":
                assert isinstance(value, int)
            elif key in ("details", "extra"):
                assert value and all(isinstance(v, str) and v == v.strip() and v for v in value.values())
            elif key in ("genres", "formats"):
                assert value and all(isinstance(v, str) and v == v.strip() and v for v in value)
            elif key == "people":
                assert value and all(len(p) == 2 and p[1] == p[1].strip() and p[1] for p in value)
            else:
                assert isinstance(value, str) and value == value.strip() and value, (key, value)


def test_cover_geometry_and_lookup_noise_stay_out(records):
    text = json.dumps(records)
    for noise in ("grey", "RGBA", "Corner", "InInches", "amazonLast", "lastModification"):
        assert noise not in text


def test_a_book_entry_in_full(records):
    assert by_uuid(records, "E11E2809-D86A-48A3-95D4-6D32DB700CB6") == {
        "line": 46,
        "media_type": "book",
        "source_id": "E11E2809-D86A-48A3-95D4-6D32DB700CB6",
        "title": "Alice's Adventures in Wonderland & Through the Looking-Glass",
        "isbn": "0451520084",
        "ean": "9780451520081",
        "asin": "0451520084",
        "notes": "Rich Medina",
        "location": "UU",
        "people": [["author", "Lewis Carroll"], ["illustrator", "John Tenniel"]],
        "genres": ["Literature & Fiction"],
        "formats": ["Mass Market Paperback"],
        "release_date": "1960-04-01",
        "year": "1960",
        "rating": "8",
        "cover_url": "https://images-na.ssl-images-amazon.com/images/I/51MRjkqNj6L.jpg",
        "details": {"publisher": "Signet Classics", "pages": "238"},
        "extra": {
            "purchase_date": "2017-07-02",
            "creation_date": "2017-07-02",
            "purchase_price": "$1.95",
            "current_value": "$1.79",
            "owner": "Rich Medina",
            "languages": "English (Published); English (Original Language); English (Unknown)",
            "country": "us",
            "private": "1",
        },
    }


def test_a_movie_entry_has_directors_cast_and_a_studio(records):
    movie = by_uuid(records, "3FBE1AEB-A8BA-438F-B7D9-CFF9478EEC90")
    assert movie["title"] == "Straight Out of Brooklyn"
    assert movie["people"][:3] == [["director", "Jack Haigis"], ["director", "Matty Rich"], ["cast", "George T. Odom"]]
    assert movie["details"] == {"studio": "MGM (Video & DVD)"}
    assert movie["runtime"] == "91"
    assert movie["release_date"] == "2003-10-07"
    assert movie["extra"]["age_rating"] == "R (Restricted)"
    assert movie["extra"]["cinematographers"] == "John Rosnell"
    assert movie["extra"]["features"].startswith("1.85:1; Multiple Formats; Anamorphic")


def test_gadgets_and_ebooks(records):
    kitchen = by_uuid(records, "68A11C25-31FC-4D70-B432-BAE0054A16F6")
    assert (kitchen["media_type"], kitchen["genres"]) == ("other", ["Kitchen & Dining"])
    assert kitchen["ean"] == "0759606024735"
    magazine = by_uuid(records, "4EF491AD-9C88-48EE-B362-A2947DC7AA36")
    assert magazine["media_type"] == "other" and magazine["details"] == {"publisher": "WAX POETICS"}
    ebooks = [r for r in records if r.get("formats") == ["Kindle Edition"]]
    assert len(ebooks) == 2 and {r["media_type"] for r in ebooks} == {"book"}


# --- hand-written XML: types and keys the shared export lacks ------------------------------------------------------


@pytest.fixture(scope="module")
def typed() -> dict[str, dict]:
    return {r["title"]: r for r in iter_xml_records(DATA / "types.xml")}


def test_music_creators_are_artists_and_publishers_the_label(typed):
    album = typed["Blue Room Sessions"]
    assert album["media_type"] == "audio"
    assert album["people"] == [["artist", "The Quiet Hours"]]
    assert album["details"] == {"label": "Lantern Records", "track_count": "3"}
    assert (album["runtime"], album["rating"]) == ("41", "7")
    assert album["extra"] == {"number_of_media": "2", "tracks": "Opening; Second Song; Closing", "signed": "1"}
    assert "signed_by" not in album  # the flag does not say who signed it


def test_game_creators_are_developers(typed):
    game = typed["Tin Star Rally"]
    assert game["media_type"] == "game"
    assert game["people"] == [["developer", "Pixel Forge"]]
    assert game["details"] == {"publisher": "Arcade House", "platform": "Dreamcast"}
    assert game["extra"] == {"players": "1–4"}


def test_tv_keeps_directors_apart_from_creators(typed):
    show = typed["Harbour Nights"]
    assert show["media_type"] == "tv_series"
    assert show["people"] == [["director", "Mara Lind"], ["creator", "Owen Pike"], ["cast", "June Hale"],
                              ["cast", "Tom Avery"]]
    assert show["details"] == {"studio": "Lantern Films"}
    assert show["extra"] == {"edition": "Complete Season 1"}


def test_book_authors_series_cover_fallback_and_local_midnight(typed):
    book = typed["The Lighthouse Keeper"]
    assert book["people"] == [["author", "Ada Quill"], ["author", "Ben Ross"]]  # authors and creators, once each
    assert book["genres"] == ["Fiction", "Sea Stories"]  # an <array> value
    assert book["details"] == {"series": "Harbour Lights", "series_number": "2"}
    assert book["cover_url"] == "https://covers.example/medium.jpg"
    assert book["release_date"] == "2010-03-15"  # 23:00Z is midnight in Berlin
    assert book["extra"] == {"subtitle": "A Novel"}


def test_type_falls_back_to_product_group_then_other(typed):
    assert typed["Pocket Tides"]["media_type"] == "book"  # eBooks / Kindle Edition
    assert typed["Chart Maker"]["media_type"] == "other"  # Software
    assert typed["Mystery Object"]["media_type"] == "other"  # nothing known: kept, not skipped
    assert typed["Blue Room Sessions"]["title"] == "Blue Room Sessions"  # stripped


# --- the CSV export -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def csv_records() -> list[dict]:
    return list(iter_records(DATA / "library.csv"))


def test_csv_is_detected_and_every_row_read(csv_records):
    assert detect(DATA / "library.csv") == "csv"
    assert [r["line"] for r in csv_records] == [2, 4, 5, 6, 7, 8, 9]  # the first row's notes span two lines
    assert [r["media_type"] for r in csv_records] == ["book", "movie", "audio", "game", "other", "book", "book"]


def test_csv_book_row(csv_records):
    book = csv_records[0]
    assert book["source_id"] == "5B0C1D3E-0000-4000-8000-000000000001"
    assert (book["isbn"], book["ean"], book["asin"]) == ("0802133630", "9780802133632", "0802133630")
    assert book["people"] == [["author", "Ada Quill"], ["author", "Ben Ross"]]
    assert book["signed_by"] == "Ada Quill"
    assert book["notes"] == "Two stories,\none book"
    assert book["genres"] == ["Literature & Fiction", "Classics"]
    assert (book["release_date"], book["year"], book["rating"]) == ("1994-01-01", "1994", "9")
    assert book["details"] == {"publisher": "Harbour Press", "edition": "First", "pages": "320",
                               "series": "Harbour Lights"}
    assert book["extra"] == {"purchase_date": "2017-07-03", "creation_date": "2017-07-03", "purchase_price": "$12.00"}


def test_csv_asin_from_each_kind_of_amazon_link(csv_records):
    assert csv_records[0]["asin"] == "0802133630"  # /dp/
    assert csv_records[1]["asin"] == "B00005JKZY"  # /gp/product/...?query
    assert csv_records[2]["asin"] == "B000002A1Z"  # /exec/obidos/ASIN/
    assert "asin" not in csv_records[3]
    assert csv_records[3]["extra"]["amazon_link"] == "https://example.com/not-amazon"


def test_csv_dates(csv_records):
    assert csv_records[1]["release_date"] == "2006-10-02"  # 10/2/06
    assert csv_records[2]["release_date"] == "2006-10-02"  # Oct 2, 2006
    assert "release_date" not in csv_records[3] and "year" not in csv_records[3]
    assert csv_records[3]["extra"]["release_date_text"] == "sometime in 2000"
    assert "release_date" not in csv_records[4] and csv_records[4]["year"] == "2006"


@pytest.mark.parametrize(("text", "iso"), [
    ("2006-10-02", "2006-10-02"), ("2006-10-02 21:24:16 +0000", "2006-10-02"), ("10/02/2006", "2006-10-02"),
    ("25/12/2006", "2006-12-25"), ("2.10.2006", "2006-10-02"), ("October 2, 2006", "2006-10-02"),
    ("2 Oct 2006", "2006-10-02"), ("Sept. 2, 2006", "2006-09-02"), ("1/1/75", "1975-01-01"),
])
def test_csv_date_shapes(tmp_path, text, iso):
    path = tmp_path / "dates.csv"
    path.write_text(f'Title,Item Type,Release Date\nA,Book,"{text}"\n', encoding="utf-8")
    assert next(iter_records(path))["release_date"] == iso


def test_csv_movie_and_music_mapping(csv_records):
    movie, album, game = csv_records[1], csv_records[2], csv_records[3]
    assert movie["people"] == [["director", "Mara Lind"]]
    assert movie["details"] == {"studio": "Lantern Films", "edition": "Anniversary Edition"}
    assert (movie["rating"], movie["runtime"], movie["upc"]) == ("10", "82", "012345678905")
    assert album["people"] == [["artist", "The Quiet Hours"]] and album["details"] == {"label": "Lantern Records"}
    assert "rating" not in album  # 0 stars: not rated
    assert game["people"] == [["developer", "Pixel Forge"]]
    assert game["details"] == {"publisher": "Arcade House", "platform": "Dreamcast"}


def test_csv_rows_without_uuid_get_stable_content_ids(tmp_path, csv_records):
    ids = [r["source_id"] for r in csv_records[1:]]
    assert all(re.fullmatch(r"csv:[0-9a-f]{40}#\d+", i) for i in ids)
    assert ids[-2].split("#")[0] == ids[-1].split("#")[0] and (ids[-2][-2:], ids[-1][-2:]) == ("#1", "#2")
    assert len(set(ids)) == len(ids)
    # A re-export with the rows in another order maps every row back to the same id.
    header, *rows = (DATA / "library.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    first, rest = "".join(rows[:2]), rows[2:]
    reordered = tmp_path / "reordered.csv"
    reordered.write_text(header + "".join(reversed(rest)) + first, encoding="utf-8")
    assert {r["title"] + r["source_id"] for r in iter_records(reordered)} == {
        r["title"] + r["source_id"] for r in csv_records}
    # A changed identifying value is a different item.
    changed = tmp_path / "changed.csv"
    changed.write_text((DATA / "library.csv").read_text(encoding="utf-8").replace("Wooden Puzzle", "Wood Puzzle"),
                       encoding="utf-8")
    assert {r["source_id"] for r in iter_records(changed)} != {r["source_id"] for r in csv_records}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "latin-1", "utf-16"])
def test_csv_encodings(tmp_path, encoding):
    path = tmp_path / "enc.csv"
    path.write_bytes("Item Type,Title,Creator\nBook,Café Crème,Zoë Noël\n".encode(encoding))
    assert detect(path) == "csv"
    [record] = iter_records(path)
    assert (record["title"], record["people"]) == ("Café Crème", [["author", "Zoë Noël"]])


def test_csv_tab_separated_and_unknown_columns_kept(tmp_path):
    path = tmp_path / "tabs.csv"
    path.write_text("Title\tItem Type\tUUID\tShelf Mark\nA Book\tBook\tU-1\tB-12\n", encoding="utf-8")
    assert list(iter_records(path)) == [{"line": 2, "media_type": "book", "source_id": "U-1", "title": "A Book",
                                         "extra": {"shelf_mark": "B-12"}}]


def test_csv_that_is_not_a_delicious_export(tmp_path):
    path = DATA / "not-delicious.csv"
    with pytest.raises(SourceError, match="This is not a Delicious Library export: it is neither"):
        detect(path)
    with pytest.raises(SourceError, match="not a Delicious Library export"):
        list(iter_csv_records(path))


# --- hostile and wrong files --------------------------------------------------------------------------------------


def _consume(path: Path) -> tuple[list[dict], SourceError]:
    """Read until the error; return what was yielded before it and the error."""
    out: list[dict] = []
    with pytest.raises(SourceError) as info:
        for record in iter_records(path):
            out.append(record)
    return out, info.value


def _passwd_lines() -> list[str]:
    return [line for line in PASSWD.read_text().splitlines() if line.strip()] if PASSWD.exists() else ["root:x:0:0"]


@pytest.mark.parametrize("name", ["xxe.xml", "xxe-parameter.xml", "billion-laughs.xml"])
def test_entity_declarations_are_refused(name):
    assert detect(DATA / name) == "xml"
    records, error = _consume(DATA / name)
    assert records == []
    assert str(error).startswith("This file declares XML entities, which collectZ does not read (a possible attack)")
    output = json.dumps(records) + str(error)
    assert not any(line in output for line in _passwd_lines())
    assert "lol" not in output


def test_an_external_dtd_is_never_loaded():
    records = list(iter_records(DATA / "external-dtd.xml"))
    assert records == [{"line": 1, "media_type": "other", "title": "Harmless"}]


def test_the_apple_doctype_is_fine(typed):
    assert "<!DOCTYPE plist PUBLIC" in (DATA / "types.xml").read_text()
    assert len(typed) == 7


def test_malformed_xml_names_the_line():
    records, error = _consume(DATA / "malformed.xml")
    assert [r["title"] for r in records] == ["Fine First Entry"]  # the caller stages rows: this one is not written
    assert str(error).startswith("The XML is malformed at line 12: ")
    assert "strin" in str(error)


def test_truncated_xml(tmp_path):
    path = tmp_path / "cut.xml"
    path.write_bytes((DATA / "types.xml").read_bytes()[:1200])
    records, error = _consume(path)
    assert [r["line"] for r in records] == [1]
    assert re.match(r"The XML is malformed at line \d+: ", str(error))


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (b"  \n\r\n\t", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)) * 4, "it is a binary file"),
    (b'{"items": [{"title": "A Book"}]}', "it looks like JSON"),
    (b'<?xml version="1.0"?>\n<rss><channel><title>News</title></channel></rss>', "it is XML, but not"),
    (b"Just some notes\nabout my books\n", "it is neither the XML export nor a CSV export"),
])
def test_wrong_files_are_refused(tmp_path, content, message):
    path = tmp_path / "upload"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=f"^This is not a Delicious Library export: {message}"):
        detect(path)
    with pytest.raises(SourceError, match=f"^This is not a Delicious Library export: {message}"):
        iter_records(path)


def test_xml_that_is_not_a_plist_is_refused_by_the_xml_reader(tmp_path):
    path = tmp_path / "other.xml"
    path.write_text('<?xml version="1.0"?>\n<library><book title="A"/></library>\n')
    with pytest.raises(SourceError, match="root element is <library>, not <plist>"):
        list(iter_xml_records(path))


# --- streaming ----------------------------------------------------------------------------------------------------

_MEASURE = """
import sys
from pathlib import Path
from lxml import etree
from collectz.importers.delicious import iter_xml_records

def peak():  # this process's own high-water mark (ru_maxrss would carry the parent's over from before exec)
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

before = peak()
if sys.argv[2] == "stream":
    count = sum(1 for _ in iter_xml_records(Path(sys.argv[1])))
else:  # the whole tree at once: what streaming must avoid
    count = len(etree.parse(sys.argv[1]).getroot()[0])
print(count, peak() - before)
"""


def _big_export(export: Path, target: Path, size: int) -> None:
    """The shared export's entries repeated with fresh uuids until the file has `size` bytes."""
    text = export.read_text(encoding="utf-8")
    start, end = text.index("<array>") + len("<array>"), text.rindex("</array>")
    uuid_string = re.compile(r"(<key>uuidString</key>\s*<string>)[^<]*")
    with open(target, "w", encoding="utf-8") as f:
        written = f.write(text[:start])
        while written < size:
            written += f.write(uuid_string.sub(lambda m: m[1] + str(uuid.uuid4()).upper(), text[start:end]))
        f.write(text[end:])


def _peak_growth(path: Path, mode: str) -> tuple[int, int]:
    run = subprocess.run([sys.executable, "-c", _MEASURE, str(path), mode], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, check=True, timeout=300)
    count, growth = run.stdout.split()
    return int(count), int(growth)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status (Linux)")
def test_xml_is_streamed_in_flat_memory(export, tmp_path):
    big = tmp_path / "big.xml"
    _big_export(export, big, 30 * 2**20)
    bound = 40 * 2**20
    count, streamed = _peak_growth(big, "stream")
    tree_count, whole_tree = _peak_growth(big, "tree")
    assert count == tree_count > 20 * 268
    assert whole_tree > bound  # the bound would catch a parser that keeps the tree
    assert streamed < bound
