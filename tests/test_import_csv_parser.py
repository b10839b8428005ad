"""Generic CSV parser: encodings, delimiters, quoting and line numbers, alias mapping, the template, the errors a
user meets with the wrong file, and streaming. Pure unit tests: files are written to tmp_path."""

from __future__ import annotations

import csv
import inspect as pyinspect
import io
import tracemalloc
from datetime import date
from pathlib import Path

import pytest
from stdnum import ean, isbn

from collectz.importers import SourceError, media_type_of
from collectz.importers.csv_generic import (
    FIELDS,
    SAMPLE_SIZE,
    CsvLayout,
    auto_mapping,
    inspect,
    iter_records,
    preview,
    template_csv,
)
from collectz.models.media_types import MEDIA_TYPES, PERSON_ROLES, TYPE_DETAILS


def write(tmp_path: Path, content: str | bytes, encoding: str = "utf-8", name: str = "items.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def records(path: Path, mapping: dict[str, str] | None = None) -> list[dict]:
    layout = inspect(path)
    return list(iter_records(path, mapping or auto_mapping(layout.columns), layout))


# --- Encodings ----------------------------------------------------------------------------------------------------

ACCENTED = "title,authors,year\nL'Étranger,Camus; Albert,1942\nDie Blechtrommel,Günter Grass,1959\n"


@pytest.mark.parametrize("write_as, detected", [
    ("utf-8", "utf-8"),
    ("utf-8-sig", "utf-8-sig"),
    ("utf-16", "utf-16"),  # Python writes a BOM
    ("utf-16-le", "utf-16-le"),  # no BOM: every other byte is NUL
    ("utf-16-be", "utf-16-be"),
    ("utf-32", "utf-32"),
    ("latin-1", "cp1252"),
])
def test_each_encoding_is_detected_and_decoded(tmp_path, write_as, detected):
    path = write(tmp_path, ACCENTED, write_as)
    layout = inspect(path)
    assert layout.encoding == detected
    assert layout.columns == ["title", "authors", "year"]  # no BOM glued to the first name
    rows = records(path)
    assert [r["title"] for r in rows] == ["L'Étranger", "Die Blechtrommel"]
    assert rows[1]["people"] == [["author", "Günter Grass"]]


def test_windows_1252_punctuation_is_read_as_cp1252(tmp_path):
    path = write(tmp_path, "title,notes\nCafé,“Paid” 12 €\n", "cp1252")
    assert records(path)[0] == {"line": 2, "title": "Café", "notes": "“Paid” 12 €"}


def test_bytes_cp1252_leaves_undefined_do_not_stop_the_import(tmp_path):
    path = write(tmp_path, b"title,notes\nCaf\xe9,odd \x81 byte\n")
    assert inspect(path).encoding == "cp1252"
    assert records(path)[0]["notes"] == "odd \x81 byte"


def test_utf8_character_cut_by_the_sample_boundary_is_still_utf8(tmp_path):
    head = "title,notes\nZoë,".encode()
    content = head + b"x" * (SAMPLE_SIZE - len(head) - 1) + "é\nNext,ü\n".encode()
    assert content[SAMPLE_SIZE - 1:SAMPLE_SIZE + 1] == "é".encode()
    with pytest.raises(UnicodeDecodeError):
        content[:SAMPLE_SIZE].decode("utf-8")  # the sample really ends inside "é"
    path = write(tmp_path, content)
    assert inspect(path).encoding == "utf-8"
    assert [r["title"] for r in records(path)] == ["Zoë", "Next"]


def test_invalid_utf8_after_the_sample_is_a_source_error_with_a_line(tmp_path):
    rows = "".join(f"Title {n},{'x' * 60}\n" for n in range(2000))
    path = write(tmp_path, ("title,notes\n" + rows).encode() + b"Caf\xe9,bad\n")
    assert inspect(path).encoding == "utf-8"
    with pytest.raises(SourceError, match=r"line \d+: the text is not valid utf-8"):
        records(path)


# --- Delimiters and quoting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_each_delimiter_is_detected(tmp_path, delimiter):
    rows = [["Title", "Author", "Year", "Notes"],
            ["The Hobbit", "Tolkien, J.R.R.", "1937", "first; second"],
            ["Dune", "Herbert, Frank", "1965", "tab\there" if delimiter != "\t" else "none"]]
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    path = write(tmp_path, out.getvalue())
    layout = inspect(path)
    assert layout.delimiter == delimiter
    assert layout.columns == ["Title", "Author", "Year", "Notes"]
    first, second = records(path)
    assert first["people"] == [["author", "Tolkien, J.R.R."]]
    assert first["notes"] == "first; second"
    assert second["year"] == "1965"


def test_delimiter_falls_back_to_the_header_when_the_sniffer_cannot_decide(tmp_path):
    # Ragged rows defeat csv.Sniffer; the header line still says semicolon.
    path = write(tmp_path, "Title;Year;Notes\nA;1;x\nB\nC;3;y;z;w\n")
    assert inspect(path).delimiter == ";"
    assert [r["title"] for r in records(path)] == ["A", "B", "C"]


def test_a_single_title_column_keeps_commas_in_titles(tmp_path):
    path = write(tmp_path, "Title\nZen, or the Skill to Catch a Killer\nDune\n")
    layout = inspect(path)
    assert layout.columns == ["Title"]
    assert [r["title"] for r in records(path)] == ["Zen, or the Skill to Catch a Killer", "Dune"]


QUOTED = (
    'title,notes,year\r\n'
    '"Hello, world","She said ""hi""",2001\r\n'           # line 2
    'Multi,"first line\r\nsecond line\r\nthird",2002\r\n'  # lines 3-5
    'After,plain,2003\r\n'                                 # line 6
    '\r\n'                                                 # line 7: empty, skipped
    ',,\r\n'                                               # line 8: empty cells only, skipped
    '"Lines\nin LF",x,2004\n'                              # lines 9-10
    'Last,y,2005\n'                                        # line 11
)


def test_quoted_commas_quotes_and_newlines_round_trip(tmp_path):
    rows = records(write(tmp_path, QUOTED))
    assert rows[0]["title"] == "Hello, world"
    assert rows[0]["notes"] == 'She said "hi"'
    assert rows[1]["notes"] == "first line\r\nsecond line\r\nthird"
    assert rows[3]["title"] == "Lines\nin LF"


def test_line_numbers_count_physical_lines_after_multi_line_fields(tmp_path):
    rows = records(write(tmp_path, QUOTED))
    assert [(r["line"], r["title"]) for r in rows] == [
        (2, "Hello, world"), (3, "Multi"), (6, "After"), (9, "Lines\nin LF"), (11, "Last")]


def test_leading_blank_lines_before_the_header_keep_physical_line_numbers(tmp_path):
    rows = records(write(tmp_path, "\n\ntitle,year\nDune,1965\n"))
    assert rows == [{"line": 4, "title": "Dune", "year": "1965"}]


# --- Records ---------------------------------------------------------------------------------------------------


def test_values_go_to_the_record_keys_the_contract_names(tmp_path):
    header = ("ID,Type,Title,Year,Author(s),Illustrator,Genre(s),Format,Publisher,Pages,Purchase Date,Price,"
              "Tags,Shelf,Comments,My Rating,Unknown column")
    row = ('b-1, Book ,The Hobbit,1937,"Tolkien, J.R.R.; Christopher Tolkien | Tolkien, J.R.R.",Alan Lee,'
           'Fantasy|Classic;,Paperback,HarperCollins,310,2023-05-14,8.99,"fav, reread",Study,"A ""gift""",9,junk')
    (record,) = records(write(tmp_path, f"{header}\n{row}\n"))
    assert record == {
        "line": 2, "source_id": "b-1", "media_type": "Book", "title": "The Hobbit", "year": "1937",
        "people": [["author", "Tolkien, J.R.R."], ["author", "Christopher Tolkien"], ["illustrator", "Alan Lee"]],
        "genres": ["Fantasy", "Classic"], "formats": ["Paperback"],
        "details": {"publisher": "HarperCollins", "pages": "310"},
        "extra": {"purchase_date": "2023-05-14", "purchase_price": "8.99", "tags": "fav, reread"},
        "location": "Study", "notes": 'A "gift"', "rating": "9",
    }


def test_empty_cells_and_an_empty_import_ref_are_left_out(tmp_path):
    path = write(tmp_path, "Import Ref,Title,Year,Director\n , Alien ,,\nr2,Heat,1995,Michael Mann\n")
    first, second = records(path)
    assert first == {"line": 2, "title": "Alien"}
    assert second["source_id"] == "r2"


def test_short_rows_and_values_that_would_fail_validation_pass_through(tmp_path):
    path = write(tmp_path, "title,year,rating,isbn\nOdd,19x5,eleven\nShort\n")
    assert records(path) == [
        {"line": 2, "title": "Odd", "year": "19x5", "rating": "eleven"},
        {"line": 3, "title": "Short"},
    ]


def test_excel_text_formula_wrapper_is_unwrapped(tmp_path):
    path = write(tmp_path, 'Title,ISBN,Notes\nThe Hobbit,"=""0261102214""",="  "\n')
    assert records(path) == [{"line": 2, "title": "The Hobbit", "isbn": "0261102214"}]  # ="  " is an empty cell


def test_a_row_without_a_title_is_still_yielded_for_the_service_to_report(tmp_path):
    rows = records(write(tmp_path, "title,year\n,1999\n"))
    assert rows == [{"line": 2, "year": "1999"}]


def test_a_hand_made_mapping_is_used_and_unmapped_fields_are_ignored(tmp_path):
    path = write(tmp_path, "Col A,Col B,Col C\nDune,Frank Herbert,x\n")
    rows = list(iter_records(path, {"title": "Col A", "authors": "Col B", "notes": ""}))
    assert rows == [{"line": 2, "title": "Dune", "people": [["author", "Frank Herbert"]]}]


def test_every_people_column_becomes_a_known_role(tmp_path):
    people_fields = [f.name for f in FIELDS if f.name in {
        "authors", "directors", "cast", "writers", "artists", "illustrators", "inkers", "colorists", "creators",
        "developers", "producers"}]
    header = ",".join(["title", *people_fields])
    path = write(tmp_path, header + "\n" + ",".join(["T", *(f"N{i}" for i in range(len(people_fields)))]) + "\n")
    roles = [role for role, _ in records(path)[0]["people"]]
    assert len(roles) == len(people_fields) == 11
    assert set(roles) <= set(PERSON_ROLES)


def test_preview_returns_the_first_rows(tmp_path):
    path = write(tmp_path, "title\n" + "".join(f"T{n}\n" for n in range(50)))
    rows = preview(path, {"title": "title"}, limit=3)
    assert rows == [{"line": 2, "title": "T0"}, {"line": 3, "title": "T1"}, {"line": 4, "title": "T2"}]
    assert len(preview(path, {"title": "title"})) == 20


# --- Auto-mapping ----------------------------------------------------------------------------------------------

LIBIB = ("item_type,title,creators,first_name,ean_isbn13,upc_isbn10,description,publisher,publish_date,group,tags,"
         "notes,price,length,number_of_discs,number_of_players,age_group,ensemble,aspect_ratio,esrb,rating,review,"
         "review_date,status,began,completed,added,copies")


def test_libib_export_is_mapped():
    assert auto_mapping(LIBIB.split(",")) == {
        "media_type": "item_type", "title": "title", "release_date": "publish_date", "overview": "description",
        "rating": "rating", "copies": "copies", "notes": "notes", "ean": "ean_isbn13", "upc": "upc_isbn10",
        "creators": "creators", "publisher": "publisher", "purchase_price": "price", "tags": "tags",
        "added_date": "added", "review": "review",
    }


def test_clz_movies_like_export_is_mapped():
    columns = ["Index", "Title", "Release Year", "Director", "Cast", "Genre", "Format", "Barcode", "Runtime",
               "Studio", "Edition", "Region", "Location", "Notes", "My Rating", "Purchase Date", "Purchase Price",
               "Added Date", "Plot", "IMDb Url"]
    assert auto_mapping(columns) == {
        "title": "Title", "year": "Release Year", "overview": "Plot", "formats": "Format", "genres": "Genre",
        "rating": "My Rating", "location": "Location", "notes": "Notes", "runtime": "Runtime", "ean": "Barcode",
        "directors": "Director", "cast": "Cast", "edition": "Edition", "studio": "Studio", "region": "Region",
        "purchase_date": "Purchase Date", "purchase_price": "Purchase Price", "added_date": "Added Date",
    }


def test_clz_books_and_comics_like_headers_are_mapped():
    books = auto_mapping(["Title", "Author", "ISBN", "Publisher", "Publication Date", "No. of Pages", "Series",
                          "Series #", "Genre", "Format", "Location", "Read It"])
    assert books == {
        "title": "Title", "release_date": "Publication Date", "formats": "Format", "genres": "Genre",
        "location": "Location", "isbn": "ISBN", "authors": "Author", "publisher": "Publisher", "series": "Series",
        "series_number": "Series #", "pages": "No. of Pages",
    }
    comics = auto_mapping(["Series", "Issue #", "Title", "Writer", "Penciller", "Colorist", "Cover Date"])
    assert comics == {"title": "Title", "writers": "Writer", "colorists": "Colorist", "series": "Series",
                      "issue": "Issue #", "cover_date": "Cover Date"}


def test_goodreads_like_export_prefers_isbn13_and_maps_each_column_once():
    columns = ["Book Id", "Title", "Author", "Additional Authors", "ISBN", "ISBN13", "My Rating", "Publisher",
               "Binding", "Number of Pages", "Year Published", "Date Added", "My Review", "Private Notes",
               "Owned Copies"]
    mapping = auto_mapping(columns)
    assert mapping["isbn"] == "ISBN13"
    assert mapping["import_ref"] == "Book Id"
    assert mapping["authors"] == "Author"
    assert mapping["copies"] == "Owned Copies"
    assert "Additional Authors" not in mapping.values()
    assert len(set(mapping.values())) == len(mapping)


@pytest.mark.parametrize("column, field", [
    ("  ITEM TITLE ", "title"), ("Name", "title"), ("Media-Type", "media_type"), ("Kind", "media_type"),
    ("ISBN-10", "isbn"), ("isbn_13", "isbn"), ("UPC", "upc"), ("EAN", "ean"), ("bar code", "ean"),
    ("Author(s)", "authors"), ("Actors", "cast"), ("Artist", "artists"), ("Creator", "creators"),
    ("Genre(s)", "genres"), ("Issue #", "issue"), ("Release year", "year"), ("Shelf", "location"),
    ("Comments", "notes"), ("MY RATING", "rating"), ("import ref", "import_ref"), ("ID", "import_ref"),
])
def test_aliases_match_ignoring_case_spaces_and_punctuation(column, field):
    assert auto_mapping(["Something else", column]) == {field: column}


def test_every_alias_names_exactly_one_field():
    for field in FIELDS:
        for alias in (field.name, field.label, *field.aliases):
            assert auto_mapping([alias]) == {field.name: alias}, alias


def test_each_field_and_each_column_is_used_once():
    assert auto_mapping(["Name", "Title", "Item Title"]) == {"title": "Title"}
    assert auto_mapping(["Title", "Title"]) == {"title": "Title"}
    assert auto_mapping(["ISBN-10", "ISBN"]) == {"isbn": "ISBN"}


# --- The template ----------------------------------------------------------------------------------------------


def test_template_header_is_the_field_names_and_rows_line_up():
    rows = list(csv.reader(io.StringIO(template_csv())))
    assert rows[0] == [f.name for f in FIELDS]
    assert len(rows) == 1 + len(MEDIA_TYPES)
    assert all(len(row) == len(FIELDS) for row in rows)
    assert [media_type_of(row[1]) for row in rows[1:]] == list(MEDIA_TYPES)


CHECKS = {  # per type: people roles and type details its example must show
    "movie": ({"director", "cast"}, {"studio"}),
    "tv_series": ({"cast"}, {"network"}),
    "tv_episode": ({"director", "writer"}, {"series_title", "season", "episode"}),
    "book": ({"author"}, {"publisher", "pages"}),
    "audio": ({"artist"}, {"label", "track_count"}),
    "game": ({"developer"}, {"platform"}),
    "comic_book": ({"writer", "artist"}, {"series", "issue", "publisher"}),
    "other": ({"creator"}, {"kind"}),
}


def test_template_rows_import_cleanly(tmp_path):
    path = write(tmp_path, template_csv(), "utf-8-sig")
    layout = inspect(path)
    mapping = auto_mapping(layout.columns)
    assert mapping == {f.name: f.name for f in FIELDS}
    rows = list(iter_records(path, mapping, layout))
    assert len(rows) == len(MEDIA_TYPES)
    for record in rows:
        kind = media_type_of(record["media_type"])
        roles, detail_keys = CHECKS[kind]
        assert record["source_id"] and record["title"], kind
        assert 1900 <= int(record["year"]) <= date.today().year, kind
        assert 0 <= float(record["rating"]) <= 10, kind
        assert roles <= {role for role, _ in record["people"]}, kind
        assert detail_keys <= set(record["details"]) <= {d.name for d in TYPE_DETAILS[kind]}, kind
        for key in ("release_date", "cover_date"):
            value = record.get(key) or record["details"].get(key)
            if value:
                date.fromisoformat(value if len(value) == 10 else value + "-01")
        for key in ("runtime", "copies", "pages", "season", "episode", "track_count"):
            value = record.get(key) or record["details"].get(key)
            if value:
                assert int(value) > 0, (kind, key)
        if "isbn" in record:
            assert isbn.is_valid(record["isbn"]), kind
        for key in ("ean", "upc"):
            if key in record:
                assert ean.is_valid(record[key]) and len(record[key]) == {"ean": 13, "upc": 12}[key], kind
    book = next(r for r in rows if r["media_type"] == "book")
    assert book["isbn"] and ["author", "Tolkien, J.R.R."] in book["people"]


# --- Errors a user meets ---------------------------------------------------------------------------------------

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\nIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.mark.parametrize("content", [b"", b"   \r\n\n", b"\xef\xbb\xbf", "\n".encode("utf-16")])
def test_an_empty_file_is_refused(tmp_path, content):
    with pytest.raises(SourceError, match=r"^The file is empty\.$"):
        inspect(write(tmp_path, content))


@pytest.mark.parametrize("content", [PNG, b"title\x00\x01\x02\x03year\x00\xff\xfe" * 40, bytes(range(256)) * 8])
def test_binary_data_is_refused(tmp_path, content):
    with pytest.raises(SourceError, match=r"^This is not a CSV file: it looks like binary data\.$"):
        inspect(write(tmp_path, content))


def test_a_spreadsheet_gets_a_hint_to_save_as_csv(tmp_path):
    xlsx = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00" + b"[Content_Types].xml" + b"\x00" * 40
    with pytest.raises(SourceError, match=r"binary data\. If it is a spreadsheet, save it as CSV first\."):
        inspect(write(tmp_path, xlsx, name="items.xlsx"))


@pytest.mark.parametrize("content", [
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "x">\n<plist/>\n',
    '\ufeff  <library><item title="Dune"/></library>\n',
])
def test_an_xml_file_is_refused(tmp_path, content):
    with pytest.raises(SourceError, match=r"^This looks like an XML file, not CSV\.$"):
        inspect(write(tmp_path, content))


def test_a_single_column_that_is_not_a_title_is_refused(tmp_path):
    with pytest.raises(SourceError, match='Only one column was found, "title|year|notes"'):
        inspect(write(tmp_path, "title|year|notes\nDune|1965|x\n"))


def test_a_file_without_a_header_is_refused(tmp_path):
    with pytest.raises(SourceError, match='first line must name the columns .* holds data: "1965"'):
        inspect(write(tmp_path, "Dune,1965,Frank Herbert\nAlien,1979,Ridley Scott\n"))


def test_blank_header_names_get_a_column_number(tmp_path):
    assert inspect(write(tmp_path, "title,,year\nDune,x,1965\n")).columns == ["title", "Column 2", "year"]


def test_a_mapping_without_a_title_is_refused_when_iter_records_is_called(tmp_path):
    path = write(tmp_path, "Title,Year\nDune,1965\n")
    with pytest.raises(SourceError, match=r"^Choose which column holds the title\.$"):
        iter_records(path, {"year": "Year", "title": ""})  # no next(): the check is not lazy
    with pytest.raises(SourceError, match="Choose which column holds the title"):
        preview(path, {})


def test_a_mapping_to_a_missing_column_or_unknown_field_is_refused(tmp_path):
    path = write(tmp_path, "Title,Year\nDune,1965\n")
    with pytest.raises(SourceError, match='no column "Name"'):
        iter_records(path, {"title": "Name"})
    with pytest.raises(SourceError, match='"colour" is not a field'):
        iter_records(path, {"title": "Title", "colour": "Year"})


def test_an_unclosed_quote_names_the_line_where_the_row_starts(tmp_path):
    path = write(tmp_path, 'title,notes\nDune,ok\nAlien,"never closed\nHeat,x\n')
    layout = inspect(path)
    rows = iter_records(path, {"title": "title", "notes": "notes"}, layout)
    assert next(rows)["title"] == "Dune"
    with pytest.raises(SourceError, match=r'^Line 3 is not valid CSV: a quoted value is never closed'):
        next(rows)


# --- Streaming -------------------------------------------------------------------------------------------------


def test_iter_records_streams_a_large_file(tmp_path):
    path = tmp_path / "big.csv"
    row = "Some title {n},Some Author; Another Author,1999,Blu-ray,Drama|Crime," + "n" * 60 + "\n"
    with path.open("w", encoding="utf-8") as out:
        out.write("title,authors,year,format,genres,notes\n")
        for n in range(200_000):
            out.write(row.format(n=n))
    size = path.stat().st_size
    assert size > 20_000_000
    layout = inspect(path)
    assert layout == CsvLayout(encoding="utf-8", delimiter=",", columns=[
        "title", "authors", "year", "format", "genres", "notes"])
    tracemalloc.start()
    try:
        rows = iter_records(path, auto_mapping(layout.columns), layout)
        assert pyinspect.isgenerator(rows)
        first = next(rows)
        second = next(rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rows.close()
    assert first["title"] == "Some title 0" and second["line"] == 3
    assert peak < 1_000_000, f"peak {peak} bytes for a {size}-byte file"


def test_a_quote_that_guarded_a_formula_is_dropped_and_other_quotes_kept(tmp_path) -> None:
    """Our exports write "'-ism" so that a spreadsheet does not run the cell; importing the file gives "-ism" back."""
    from collectz.importers import csv_generic

    path = tmp_path / "quoted.csv"
    path.write_text("Title,Notes\n'-ism,'=SUM(A1)\n'Tis the season,'@home\n", encoding="utf-8")
    layout = csv_generic.inspect(path)
    records = list(csv_generic.iter_records(path, csv_generic.auto_mapping(layout.columns)))
    assert [(r["title"], r.get("notes")) for r in records] == [("-ism", "=SUM(A1)"), ("'Tis the season", "@home")]
