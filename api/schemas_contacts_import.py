"""Parsing a contacts CSV: header required (name, phone, time_zone, consent; phone mandatory),
UTF-8 with or without BOM. Valid rows come out normalized; invalid ones as per-row errors
(``row`` = the row number a spreadsheet shows, the header being row 1). No database here."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError
from api.schemas_contacts import (
    ImportRowError as RowError,
)
from api.schemas_contacts import (
    check_time_zone,
    clean_name,
    normalize_phone,
    parse_consent,
)

MAX_CSV_BYTES = 5_000_000
MAX_ROWS = 50_000
MAX_ERRORS = 1000
COLUMNS = ("name", "phone", "time_zone", "consent")
# Content types browsers and tools send for .csv files (Excel on Windows: vnd.ms-excel).
CSV_TYPES = {
    "text/csv",
    "application/csv",
    "text/plain",
    "application/vnd.ms-excel",
    "application/octet-stream",
}
_HEADER_HELP = (
    "the first line must be a header naming the columns, e.g. name,phone,time_zone,consent "
    "(phone is required, the others optional, in any order)"
)


@dataclass
class Row:
    row: int
    phone: str
    name: str | None
    time_zone: str | None
    consent: bool | None  # None: cell empty (keep the existing value on update)


@dataclass
class Parsed:
    rows: list[Row]
    errors: list[RowError]


def _invalid(message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(422, "invalid_csv", message, details)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # strips a BOM if present (Excel's "CSV UTF-8")
    except UnicodeDecodeError as err:
        raise _invalid(
            f"the file is not UTF-8 text (bad byte at offset {err.start}); "
            "save it as 'CSV UTF-8' and upload it again"
        ) from err


def _header(cells: list[str]) -> dict[str, int]:
    names = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in cells]
    # Spreadsheets often export empty trailing columns: unnamed columns are ignored.
    names = [n or f"_unnamed_{i}" for i, n in enumerate(names)]
    if "phone" not in names:
        looks_like_data = any(c.strip()[:1] in "+0123456789" for c in cells if c.strip())
        raise _invalid(
            ("the header line is missing: " if looks_like_data else "no 'phone' column: ")
            + _HEADER_HELP,
            [{"field": "header", "message": f"got {cells!r}"}],
        )
    unknown = [c for c in names if c not in COLUMNS and not c.startswith("_unnamed_")]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if unknown or dupes:
        what = f"unknown column(s) {unknown}" if unknown else f"repeated column(s) {dupes}"
        raise _invalid(f"{what}; expected only {', '.join(COLUMNS)}", [{"field": "header"}])
    return {name: i for i, name in enumerate(names)}


def _row(
    number: int, cells: list[str], cols: dict[str, int], region: str | None
) -> Row | list[RowError]:
    if len(cells) > len(cols):
        return [
            RowError(
                row=number,
                field=None,
                message=f"{len(cells)} cells but the header has {len(cols)} columns "
                "(a comma inside a value needs quotes)",
            )
        ]

    def cell(name: str) -> str:
        i = cols.get(name)
        return cells[i] if i is not None and i < len(cells) else ""

    errors: list[RowError] = []
    values: dict[str, Any] = {}
    checks: dict[str, Callable[[str], Any]] = {
        "phone": lambda v: normalize_phone(v, region),
        "name": _name,
        "time_zone": lambda v: check_time_zone(v.strip()) if v.strip() else None,
        "consent": parse_consent,
    }
    for field, check in checks.items():
        try:
            values[field] = check(cell(field))
        except ValueError as err:
            errors.append(RowError(row=number, field=field, message=str(err)))
    if errors:
        return errors
    return Row(number, values["phone"], values["name"], values["time_zone"], values["consent"])


def _name(value: str) -> str | None:
    if len(value.strip()) > 200:
        raise ValueError("longer than 200 characters")
    return clean_name(value)


def parse_csv(data: bytes, region: str | None) -> Parsed:
    """Rows to import and per-row errors. File-level problems (not UTF-8, no header, broken
    quoting) raise ApiError 422; more than MAX_ROWS rows raise 413."""
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    out = Parsed([], [])
    first: dict[str, int] = {}  # phone -> row it was first seen on
    cols: dict[str, int] | None = None
    number = data_rows = 0
    try:
        for cells in reader:
            number += 1
            if not any(c.strip() for c in cells):
                continue  # blank lines: skipped, but still counted like a spreadsheet does
            if cols is None:
                cols = _header(cells)
                continue
            data_rows += 1
            if data_rows > MAX_ROWS:
                raise ApiError(
                    413,
                    "payload_too_large",
                    f"the file has more than {MAX_ROWS} rows; split it into smaller files",
                )
            got = _row(number, cells, cols, region)
            if isinstance(got, list):
                out.errors += got
            elif got.phone in first:
                out.errors.append(
                    RowError(
                        row=number,
                        field="phone",
                        message=f"{got.phone} is already on row {first[got.phone]} of this file",
                    )
                )
            else:
                first[got.phone] = number
                out.rows.append(got)
    except csv.Error as err:
        raise _invalid(f"the CSV cannot be read at row {number + 1}: {err}") from err
    if cols is None:
        raise _invalid(f"the file is empty; {_HEADER_HELP}, then one contact per line")
    return out


def skipped_rows(errors: list[RowError]) -> int:
    return len({e.row for e in errors})
