"""Contacts: CRUD, search, and CSV import. Phones are E.164 and unique per organization."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile

from api import pagination
from api.deps import Caller, Db
from api.errors import ApiError, not_found
from api.schemas_common import COMMON_ERRORS, error_responses
from api.schemas_contacts import (
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ImportResult,
    ImportRowError,
    check_region,
)
from api.schemas_contacts_import import (
    CSV_TYPES,
    MAX_CSV_BYTES,
    MAX_ERRORS,
    MAX_ROWS,
    Parsed,
    parse_csv,
    skipped_rows,
)

router = APIRouter(prefix="/v1/contacts", tags=["contacts"], responses=COMMON_ERRORS)

_COLS = (
    "id, phone, name, time_zone, consent, consent_at, metadata::text as metadata, "
    "created_at, updated_at"
)
_PHONE_CHARS = re.compile(r"[\s().-]")


def _out(row: Any) -> ContactOut:
    return ContactOut(**{**dict(row), "metadata": json.loads(row["metadata"])})


def _conflict(phone: str, existing: UUID | None) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"a contact with phone {phone} already exists; update it with "
        "PATCH /v1/contacts/{id} instead",
        [{"field": "phone", "message": "already used", "contact_id": str(existing)}],
    )


def _unknown_zone(zone: str | None) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        "the request is invalid",
        [{"field": "body.time_zone", "message": f"{zone!r} is not known to the database server"}],
    )


async def _existing_id(db: Db, org_id: UUID, phone: str) -> UUID | None:
    found: UUID | None = await db.fetchval(
        "select id from public.contacts where org_id = $1 and phone = $2", org_id, phone
    )
    return found


@router.post("", status_code=201, response_model=ContactOut, responses=error_responses(409))
async def create_contact(body: ContactIn, who: Caller, db: Db) -> ContactOut:
    """Create a contact. The phone may be written in any common notation with its country
    code, or without it when ``default_region`` is given; it is stored as E.164."""
    try:
        async with db.transaction():  # a savepoint: an unknown zone must not abort the request
            row = await db.fetchrow(
                "insert into public.contacts (org_id, phone, name, time_zone, consent, consent_at,"
                " metadata) values ($1, $2, $3, $4, $5, case when $5 then now() end, $6::jsonb)"
                f" on conflict (org_id, phone) do nothing returning {_COLS}",
                who.org_id,
                body.phone,
                body.name,
                body.time_zone,
                body.consent,
                json.dumps(body.metadata),
            )
    except asyncpg.ForeignKeyViolationError as err:
        raise _unknown_zone(body.time_zone) from err
    if row is None:
        raise _conflict(body.phone, await _existing_id(db, who.org_id, body.phone))
    return _out(row)


def _like_prefix(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text) + "%"


@router.get("", response_model=ContactPage, responses=error_responses(400))
async def list_contacts(
    who: Caller,
    db: Db,
    q: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Name prefix (any case) or phone prefix (+1415, 1 415...).",
        ),
    ] = None,
    consent: Annotated[bool | None, Query(description="Only contacts with/without it.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> ContactPage:
    """Newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    args: list[Any] = [who.org_id, limit + 1]
    where = ["org_id = $1"]
    if q and q.strip():
        if "\x00" in q:
            detail = {"field": "query.q", "message": "must not contain NUL (\\u0000) characters"}
            raise ApiError(422, "validation_error", "the request is invalid", [detail])
        args.append(_like_prefix(q.strip()))
        cond = f"name ilike ${len(args)}"
        digits = _PHONE_CHARS.sub("", q)
        if re.fullmatch(r"\+?[0-9]+", digits):
            args.append(_like_prefix("+" + digits.lstrip("+")))
            cond += f" or phone like ${len(args)}"
        where.append(f"({cond})")
    if consent is not None:
        args.append(consent)
        where.append(f"consent = ${len(args)}")
    if page_after := pagination.after(cursor, args):
        where.append(page_after)
    rows = await db.fetch(
        f"select {_COLS} from public.contacts where {' and '.join(where)} "
        "order by created_at desc, id desc limit $2",
        *args,
    )
    return ContactPage(
        items=[_out(r) for r in rows[:limit]], next_cursor=pagination.next_cursor(rows, limit)
    )


@router.get("/{contact_id:uuid}", response_model=ContactOut, responses=error_responses(404))
async def get_contact(contact_id: UUID, who: Caller, db: Db) -> ContactOut:
    row = await db.fetchrow(
        f"select {_COLS} from public.contacts where id = $1 and org_id = $2", contact_id, who.org_id
    )
    if row is None:
        raise not_found("contact")
    return _out(row)


@router.patch("/{contact_id:uuid}", response_model=ContactOut, responses=error_responses(404, 409))
async def update_contact(contact_id: UUID, body: ContactPatch, who: Caller, db: Db) -> ContactOut:
    """Change the fields sent. Consent turning true sets ``consent_at`` to now; turning false
    clears it."""
    sent = body.model_fields_set - {"default_region"}
    args: list[Any] = [contact_id, who.org_id]
    sets: list[str] = []
    for field in ("phone", "name", "time_zone", "metadata"):
        if field in sent:
            value = getattr(body, field)
            args.append(json.dumps(value) if field == "metadata" else value)
            sets.append(f"{field} = ${len(args)}" + ("::jsonb" if field == "metadata" else ""))
    if "consent" in sent:
        args.append(body.consent)
        n = len(args)
        # In SET, `consent` is still the old value: consent_at moves only when it changes.
        sets.append(
            f"consent = ${n}, consent_at = case when not ${n} then null "
            f"when consent then consent_at else now() end"
        )
    if not sets:
        return await get_contact(contact_id, who, db)
    try:
        async with db.transaction():  # a savepoint, so the conflict can be reported
            row = await db.fetchrow(
                f"update public.contacts set {', '.join(sets)} where id = $1 and org_id = $2 "
                f"returning {_COLS}",
                *args,
            )
    except asyncpg.UniqueViolationError as err:
        assert body.phone is not None
        raise _conflict(body.phone, await _existing_id(db, who.org_id, body.phone)) from err
    except asyncpg.ForeignKeyViolationError as err:
        raise _unknown_zone(body.time_zone) from err
    if row is None:
        raise not_found("contact")
    return _out(row)


@router.delete(
    "/{contact_id:uuid}", status_code=204, response_class=Response, responses=error_responses(404)
)
async def delete_contact(contact_id: UUID, who: Caller, db: Db) -> Response:
    """Delete a contact; its calls stay, with ``contact_id`` set to null."""
    done = await db.execute(
        "delete from public.contacts where id = $1 and org_id = $2", contact_id, who.org_id
    )
    if done.endswith(" 0"):
        raise not_found("contact")
    return Response(status_code=204)


async def _multipart_only(request: Request, _who: Caller) -> None:
    # Runs before the form fields are validated, so a JSON body gets 415 rather than 422
    # (after authentication: who may call comes first).
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send multipart/form-data with the CSV in a 'file' field, not {ctype or 'no type'} "
            "(curl: -F file=@contacts.csv)",
        )


async def _known_zones(db: Db, zones: set[str]) -> set[str]:
    """The zones the database server knows (its tz data may differ from Python's)."""
    if not zones:
        return set()
    rows = await db.fetch(
        "select z from unnest($1::text[]) z where exists "
        "(select 1 from pg_catalog.pg_timezone_names t where t.name = z)",
        sorted(zones),
    )
    return {r["z"] for r in rows}


_INSERT = """
insert into public.contacts (org_id, phone, name, time_zone, consent, consent_at)
select $1, r.phone, r.name, r.time_zone, coalesce(r.consent, false),
       case when r.consent then now() end
from unnest($2::text[], $3::text[], $4::text[], $5::bool[]) as r(phone, name, time_zone, consent)
on conflict (org_id, phone) do nothing
returning phone
"""
# Existing contacts: empty cells keep the stored value; consent_at follows consent changes.
_UPDATE = """
update public.contacts c set
  name = coalesce(r.name, c.name),
  time_zone = coalesce(r.time_zone, c.time_zone),
  consent = coalesce(r.consent, c.consent),
  consent_at = case when r.consent is null or (r.consent and c.consent) then c.consent_at
                    when r.consent then now() end
from unnest($2::text[], $3::text[], $4::text[], $5::bool[]) as r(phone, name, time_zone, consent)
where c.org_id = $1 and c.phone = r.phone
returning c.id
"""


async def _store(db: Db, org_id: UUID, parsed: Parsed) -> tuple[int, int]:
    def columns(rows: list[Any]) -> list[list[Any]]:
        return [[getattr(r, f) for r in rows] for f in ("phone", "name", "time_zone", "consent")]

    if not parsed.rows:
        return 0, 0
    created = {r["phone"] for r in await db.fetch(_INSERT, org_id, *columns(parsed.rows))}
    rest = [r for r in parsed.rows if r.phone not in created]
    updated = len(await db.fetch(_UPDATE, org_id, *columns(rest))) if rest else 0
    return len(created), updated


_IMPORT_DOC = f"""Import contacts from a CSV with a header line of `name, phone, time_zone, consent`
(`phone` required; any order). Valid rows are imported even when others are not.

A phone that already exists in the organization **updates** that contact (its non-empty cells
replace the stored values; empty cells keep them), so re-importing a corrected file is safe.
A phone repeated inside the file is an error on its later rows. Errors name the row as a
spreadsheet numbers it (header = row 1). Limits: {MAX_CSV_BYTES} bytes, {MAX_ROWS} rows; the
first {MAX_ERRORS} errors are listed."""


@router.post(
    "/import",
    response_model=ImportResult,
    description=_IMPORT_DOC,
    dependencies=[Depends(_multipart_only)],
    responses=error_responses(413, 415),
)
async def import_contacts(
    who: Caller,
    db: Db,
    file: Annotated[UploadFile, File(description="CSV, UTF-8 (a BOM is fine), with a header.")],
    default_region: Annotated[
        str | None, Form(max_length=2, description="Country for phones without +code, e.g. US.")
    ] = None,
) -> ImportResult:
    if file.content_type and file.content_type.split(";")[0].strip().lower() not in CSV_TYPES:
        raise ApiError(
            415, "unsupported_media_type", f"the file is {file.content_type}, not a CSV (text/csv)"
        )
    region = None
    if default_region is not None:
        try:
            region = check_region(default_region)
        except ValueError as err:
            detail = {"field": "body.default_region", "message": str(err)}
            raise ApiError(422, "validation_error", "the request is invalid", [detail]) from err
    data = await file.read(MAX_CSV_BYTES + 1)
    if len(data) > MAX_CSV_BYTES:
        raise ApiError(413, "payload_too_large", f"the CSV is over {MAX_CSV_BYTES} bytes; split it")
    # Thousands of phone parses would stall the event loop: parse in a worker thread.
    parsed = await asyncio.to_thread(parse_csv, data, region)
    known = await _known_zones(db, {r.time_zone for r in parsed.rows if r.time_zone})
    unknown = [r for r in parsed.rows if r.time_zone and r.time_zone not in known]
    if unknown:
        parsed.rows = [r for r in parsed.rows if r not in unknown]
        parsed.errors += [
            ImportRowError(
                row=r.row, field="time_zone", message=f"{r.time_zone!r} is not known to the server"
            )
            for r in unknown
        ]
    created, updated = await _store(db, who.org_id, parsed)
    errors = sorted(parsed.errors, key=lambda e: e.row)
    return ImportResult(
        created=created,
        updated=updated,
        skipped=skipped_rows(errors),
        errors=errors[:MAX_ERRORS],
        errors_truncated=len(errors) > MAX_ERRORS,
    )
