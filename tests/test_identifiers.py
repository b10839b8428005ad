"""Identifiers: ISBN-10 (with an X check digit) and ISBN-13 become ISBN-13; UPC-A and EAN-13 become EAN-13;
a bad check digit is an error with a message, never a silent drop."""

from __future__ import annotations

import pytest

from collectz.services.identifiers import (
    IdentifierError,
    Lookup,
    normalise_asin,
    normalise_ean,
    normalise_isbn,
    parse_lookup,
)


@pytest.mark.parametrize("raw", ["080442957X", "080442957x", "0-8044-2957-X", " 0 8044 2957 X ", "9780804429573",
                                 "978-0-8044-2957-3"])
def test_isbn_10_and_13_spellings_become_one_isbn_13(raw):
    assert normalise_isbn(raw) == "9780804429573"


def test_isbn_979_prefix_stays_isbn_13():
    assert normalise_isbn("979-10-90636-07-1") == "9791090636071"


@pytest.mark.parametrize("raw", ["0804429578", "9780804429574", "0-306-40615-3"])
def test_isbn_with_a_wrong_check_digit_is_refused(raw):
    with pytest.raises(IdentifierError, match="check digit is wrong"):
        normalise_isbn(raw)


@pytest.mark.parametrize("raw", ["", "12345", "97808044295730", "ABCDEFGHIJ", "978080442957X"])
def test_isbn_of_the_wrong_shape_is_refused(raw):
    with pytest.raises(IdentifierError, match="10- or 13-digit ISBN"):
        normalise_isbn(raw)


@pytest.mark.parametrize("raw, expected", [
    ("012345678905", "0012345678905"),     # UPC-A
    ("0012345678905", "0012345678905"),    # the same as EAN-13
    ("0 12345 67890 5", "0012345678905"),
    ("4006381333931", "4006381333931"),
    ("9780804429573", "9780804429573"),    # a book's barcode is an EAN-13 too
])
def test_upc_a_and_ean_13_become_ean_13(raw, expected):
    assert normalise_ean(raw) == expected


@pytest.mark.parametrize("raw", ["012345678900", "4006381333932"])
def test_barcode_with_a_wrong_check_digit_is_refused(raw):
    with pytest.raises(IdentifierError, match="check digit is wrong"):
        normalise_ean(raw)


@pytest.mark.parametrize("raw", ["", "12345678", "40063813339311", "40063813339X1"])
def test_barcode_of_the_wrong_shape_is_refused(raw):
    with pytest.raises(IdentifierError, match="12-digit UPC or a 13-digit EAN"):
        normalise_ean(raw)


def test_asin_is_upper_cased_and_checked():
    assert normalise_asin("b000002ado") == "B000002ADO"
    assert normalise_asin("B0-00 002ADO") == "B000002ADO"
    for raw in ("B00", "B000002ADO1", "B00000*ADO"):
        with pytest.raises(IdentifierError, match="10 letters and digits"):
            normalise_asin(raw)


def test_search_terms_that_are_identifiers_are_looked_up_normalised():
    assert parse_lookup("080442957X") == Lookup(isbn13="9780804429573", ean13="9780804429573")
    assert parse_lookup("012345678905") == Lookup(isbn13=None, ean13="0012345678905")
    assert parse_lookup("0804429578") is None  # a bad check digit is not an identifier
    assert parse_lookup("alien") is None
