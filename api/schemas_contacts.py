"""Contacts: request/response models and the edge validation of phone numbers (E.164 through
``phonenumbers``) and time zones (IANA names through ``zoneinfo``), shared with the CSV import."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any, Self
from uuid import UUID

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from api.schemas_common import JsonObject, check_text

E164_EXAMPLE = "+14155550123"

# Abbreviations people type instead of a zone: a hint, not an accepted alias (an abbreviation
# does not say which rules apply, e.g. CST is used in the US, China and Cuba).
_ABBREVIATIONS = {
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "GMT": "Europe/London",
    "BST": "Europe/London",
    "CET": "Europe/Paris",
    "CEST": "Europe/Paris",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "AEST": "Australia/Sydney",
}


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    """Accepted zone names, keyed by their lower-case form (to suggest the right spelling)."""
    names = {
        n
        for n in zoneinfo.available_timezones()
        if ("/" in n or n == "UTC") and not n.startswith(("posix/", "right/"))
    }
    return {n.lower(): n for n in names}


def check_region(region: str) -> str:
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(
            f"{region!r} is not a region phonenumbers knows; use an ISO 3166 alpha-2 code "
            "such as US, GB or FR"
        )
    return code


def normalize_phone(raw: str, region: str | None = None) -> str:
    """``raw`` as E.164 (``+14155550123``), or ValueError saying what to send instead."""
    text = raw.strip()
    if not text:
        raise ValueError(f"the phone number is empty; send one in E.164 form, e.g. {E164_EXAMPLE}")
    if "\x00" in text:
        raise ValueError("must not contain NUL (\\u0000) characters")
    if not text.startswith("+") and region is None:
        raise ValueError(
            f"{raw!r} has no country code: write it as +<country code><number> "
            f'(e.g. {E164_EXAMPLE}) or also send default_region (e.g. "US")'
        )
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as err:
        raise ValueError(
            f"{raw!r} is not a phone number ({err._msg}); send it in E.164 form, "
            f"e.g. {E164_EXAMPLE}"
        ) from err
    if number.extension:
        raise ValueError(f"{raw!r} has an extension, which cannot be dialled; remove it")
    if not phonenumbers.is_valid_number(number):
        raise ValueError(
            f"{raw!r} is not a valid number for country code +{number.country_code}; "
            "check the digits and the country code"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_time_zone(name: str) -> str:
    """An IANA zone name such as ``America/New_York``, or ValueError with the fix."""
    zones = _zones()
    if name in zones.values():
        return name
    close = zones.get(name.strip().lower())
    if close:
        raise ValueError(f"unknown time zone {name!r}; did you mean {close!r}? (case matters)")
    hint = _ABBREVIATIONS.get(name.strip().upper())
    example = hint or "America/New_York"
    raise ValueError(
        f"{name!r} is not an IANA time zone name; use a Region/City name such as {example!r}"
        + (" (abbreviations like PST do not say which rules apply)" if hint else "")
    )


def parse_consent(value: str) -> bool | None:
    v = value.strip().lower()
    if v in ("", "null"):
        return None
    if v in ("true", "t", "yes", "y", "1"):
        return True
    if v in ("false", "f", "no", "n", "0"):
        return False
    raise ValueError(f"{value!r} is not a yes/no value; use true or false")


def clean_name(value: str | None) -> str | None:
    if value is None:
        return None
    check_text(value)
    return value.strip() or None


_REGION = Field(
    None,
    min_length=2,
    max_length=2,
    description="ISO 3166 country (e.g. US) for a phone written without +country code.",
    examples=["US"],
)
_PHONE_DOC = "Any common notation with its country code (+1 415 555 0123); stored as E.164."
_TZ_DOC = "IANA time zone, e.g. America/New_York; null = unknown."


class _Write(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("default_region", check_fields=False)
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        return None if v is None else check_region(v)

    @field_validator("name", check_fields=False)
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return clean_name(v)

    @field_validator("time_zone", check_fields=False)
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else check_time_zone(v)


class ContactIn(_Write):
    # default_region comes first so the phone validator can read it.
    default_region: str | None = _REGION
    phone: str = Field(min_length=1, max_length=64, description=_PHONE_DOC, examples=[E164_EXAMPLE])
    name: str | None = Field(None, max_length=200)
    time_zone: str | None = Field(None, max_length=64, description=_TZ_DOC)
    consent: bool = Field(False, description="May be called; consent_at is set when true.")
    metadata: JsonObject = Field(default_factory=dict)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str, info: ValidationInfo) -> str:
        return normalize_phone(v, info.data.get("default_region"))


class ContactPatch(_Write):
    """Only the fields sent change. ``name`` and ``time_zone`` may be null (cleared)."""

    default_region: str | None = _REGION
    # Optional but not nullable: SkipJsonSchema keeps null out of the documented type.
    phone: Annotated[str, Field(min_length=1, max_length=64)] | SkipJsonSchema[None] = Field(
        None, description=_PHONE_DOC
    )
    name: str | None = Field(None, max_length=200)
    time_zone: str | None = Field(None, max_length=64, description=_TZ_DOC)
    consent: bool | SkipJsonSchema[None] = None
    metadata: JsonObject | SkipJsonSchema[None] = Field(None, description="Replaces it whole.")

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else normalize_phone(v, info.data.get("default_region"))

    @model_validator(mode="after")
    def _not_null(self) -> Self:
        for f in ("phone", "consent", "metadata"):
            if f in self.model_fields_set and getattr(self, f) is None:
                raise ValueError(f"{f} cannot be null; leave it out to keep it")
        return self


class ContactOut(BaseModel):
    id: UUID
    phone: str = Field(description="E.164.")
    name: str | None
    time_zone: str | None
    consent: bool
    consent_at: datetime | None = Field(description="When the current consent was given.")
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ImportRowError(BaseModel):
    row: int = Field(description="Row in the file as a spreadsheet numbers it (header = 1).")
    field: str | None = Field(description="Column, or null for the whole row.")
    message: str


class ImportResult(BaseModel):
    created: int = Field(description="New contacts.")
    updated: int = Field(description="Rows whose phone already existed: non-empty cells applied.")
    skipped: int = Field(description="Rows not imported (see errors).")
    errors: list[ImportRowError]
    errors_truncated: bool = Field(description="More errors than the first 1000 listed.")
