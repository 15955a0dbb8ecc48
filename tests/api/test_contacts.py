"""Contacts API: E.164 and IANA validation at the edge with the fix in the message, consent_at,
409 on a duplicate phone, search + pagination, and the CSV import with real files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from api import schemas_contacts_import
from tests.api.conftest import Tenant


async def _make(api: httpx.AsyncClient, h: dict[str, str], **body: Any) -> httpx.Response:
    return await api.post("/v1/contacts", json=body, headers=h)


def _field_errors(r: httpx.Response) -> dict[str, str]:
    err = r.json()["error"]
    return {d["field"]: d["message"] for d in err["details"]}


async def test_crud_and_consent(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    h = world["A"].key_headers()
    r = await _make(api, h, phone="+1 415 555 0123", name=" Ada ", time_zone="America/New_York")
    assert r.status_code == 201, r.text
    c = r.json()
    assert (c["phone"], c["name"], c["consent"], c["consent_at"]) == (
        "+14155550123",
        "Ada",
        False,
        None,
    )
    # The same contact through the user path (JWT, under RLS).
    got = await api.get(f"/v1/contacts/{c['id']}", headers=world["A"].jwt_headers())
    assert got.status_code == 200 and got.json()["time_zone"] == "America/New_York"

    on = (await api.patch(f"/v1/contacts/{c['id']}", json={"consent": True}, headers=h)).json()
    assert on["consent"] is True and on["consent_at"]
    again = await api.patch(f"/v1/contacts/{c['id']}", json={"consent": True}, headers=h)
    assert again.json()["consent_at"] == on["consent_at"]  # unchanged: consent did not change
    cleared = await api.patch(
        f"/v1/contacts/{c['id']}", json={"name": None, "time_zone": None}, headers=h
    )
    assert cleared.json()["name"] is None and cleared.json()["time_zone"] is None
    off = (await api.patch(f"/v1/contacts/{c['id']}", json={"consent": False}, headers=h)).json()
    assert off["consent"] is False and off["consent_at"] is None

    assert (await api.delete(f"/v1/contacts/{c['id']}", headers=h)).status_code == 204
    gone = await api.get(f"/v1/contacts/{c['id']}", headers=h)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"


async def test_created_with_consent_has_consent_at(
    api: httpx.AsyncClient, world: dict[str, Tenant]
) -> None:
    r = await _make(api, world["A"].jwt_headers(), phone="+442079460958", consent=True)
    assert r.status_code == 201 and r.json()["consent_at"]


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"phone": "4155550123"}, "body.phone", "default_region"),
        ({"phone": "+1 999 555 0123"}, "body.phone", "not a valid number"),
        ({"phone": "+ call me"}, "body.phone", "E.164"),
        ({"phone": "call me"}, "body.phone", "country code"),
        ({"phone": "+14155550123 ext. 7"}, "body.phone", "extension"),
        ({"phone": "4155550123", "default_region": "ZZ"}, "body.default_region", "ISO 3166"),
        ({"phone": "+14155550123", "time_zone": "PST"}, "body.time_zone", "America/Los_Angeles"),
        ({"phone": "+14155550123", "time_zone": "america/new_york"}, "body.time_zone", "did you"),
        ({"phone": "+14155550123", "timezone": "UTC"}, "body.timezone", "Extra inputs"),
        ({"phone": "+14155550123", "name": "a\x00b"}, "body.name", "NUL"),
        ({"phone": "+14155550123", "metadata": {"k": "\x00"}}, "body.metadata", "NUL"),
    ],
)
async def test_invalid_input_names_field_and_fix(
    api: httpx.AsyncClient, world: dict[str, Tenant], body: dict[str, Any], field: str, needle: str
) -> None:
    r = await _make(api, world["A"].key_headers(), **body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "validation_error"
    errors = _field_errors(r)
    assert field in errors and needle in errors[field], errors


async def test_default_region(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    h = world["A"].key_headers()
    r = await _make(api, h, phone="(415) 555-0199", default_region="us")
    assert r.status_code == 201 and r.json()["phone"] == "+14155550199"
    p = await api.patch(
        f"/v1/contacts/{r.json()['id']}",
        json={"phone": "020 7946 0958", "default_region": "GB"},
        headers=h,
    )
    assert p.json()["phone"] == "+442079460958"
    null = await api.patch(f"/v1/contacts/{r.json()['id']}", json={"phone": None}, headers=h)
    assert null.status_code == 422 and "cannot be null" in null.text


async def test_duplicate_phone_is_409(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    h = world["A"].key_headers()
    first = (await _make(api, h, phone="+14155550150")).json()
    dup = await _make(api, h, phone="+1 (415) 555-0150")
    assert dup.status_code == 409
    err = dup.json()["error"]
    assert err["code"] == "conflict" and err["request_id"]
    assert err["details"][0]["contact_id"] == first["id"]
    other = (await _make(api, h, phone="+14155550151")).json()
    clash = await api.patch(
        f"/v1/contacts/{other['id']}", json={"phone": "+14155550150"}, headers=h
    )
    assert (
        clash.status_code == 409
        and clash.json()["error"]["details"][0]["contact_id"] == first["id"]
    )
    # The same phone in another organization is fine.
    assert (await _make(api, world["B"].key_headers(), phone="+14155550150")).status_code == 201


async def test_search_filters_and_pages(api: httpx.AsyncClient, world: dict[str, Tenant]) -> None:
    h = world["A"].key_headers()
    for i, name in enumerate(["Alice Smith", "alfred", "Bob", "Al_x", "Zed"]):
        await _make(api, h, phone=f"+1212555{i:04d}", name=name, consent=i % 2 == 0)

    async def names(**params: Any) -> list[str | None]:
        r = await api.get("/v1/contacts", params=params, headers=h)
        assert r.status_code == 200, r.text
        return sorted(c["name"] or "" for c in r.json()["items"])

    assert await names(q="al") == ["Al_x", "Alice Smith", "alfred"]
    assert await names(q="Al_") == ["Al_x"]  # LIKE wildcards are literal
    assert await names(q="+1 212 555 000") == ["Al_x", "Alice Smith", "Bob", "Zed", "alfred"]
    assert await names(q="12125550002") == ["Bob"]
    assert await names(q="%") == []
    assert await names(consent=True, q="a") == ["Alice Smith"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/contacts", params=params, headers=h)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6  # 5 + the world's contact


# ---------------------------------------------------------------------------------------------
# CSV import


def _csv(tmp_path: Path, text: str, *, bom: bool = False, name: str = "c.csv") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


async def _upload(
    api: httpx.AsyncClient,
    h: dict[str, str],
    path: Path,
    ctype: str = "text/csv",
    **form: str,
) -> httpx.Response:
    with path.open("rb") as f:
        return await api.post(
            "/v1/contacts/import", files={"file": (path.name, f, ctype)}, data=form, headers=h
        )


async def test_import_keeps_good_rows_and_reports_bad(
    api: httpx.AsyncClient, world: dict[str, Tenant], tmp_path: Path
) -> None:
    h = world["A"].key_headers()
    text = (
        "Name,Phone,Time Zone,Consent\r\n"
        "Ada,+1 415 555 0101,America/New_York,yes\r\n"  # row 2
        "Bad phone,12,UTC,no\r\n"  # row 3
        "\r\n"  # row 4: blank, skipped
        '"Lovelace, Ada",+44 20 7946 0958,Europe/London,\r\n'  # row 5: quoted comma
        "Tz,+14155550102,PST,maybe\r\n"  # row 6: two errors
        "Dup,+14155550101,,\r\n"  # row 7: same phone as row 2
        "Extra,+14155550103,UTC,yes,oops\r\n"  # row 8: too many cells
        "Local,(415) 555-0104,,1\r\n"  # row 9: needs default_region
    )
    r = await _upload(api, h, _csv(tmp_path, text, bom=True), default_region="US")
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["created"], out["updated"], out["skipped"]) == (3, 0, 4)
    got = {(e["row"], e["field"]) for e in out["errors"]}
    assert got == {(3, "phone"), (6, "time_zone"), (6, "consent"), (7, "phone"), (8, None)}
    assert any("America/Los_Angeles" in e["message"] for e in out["errors"])
    listed = (await api.get("/v1/contacts", params={"q": "+1415555010"}, headers=h)).json()
    by_phone = {c["phone"]: c for c in listed["items"]}
    assert by_phone["+14155550101"]["consent"] is True and by_phone["+14155550101"]["consent_at"]
    assert by_phone["+14155550104"]["name"] == "Local"
    london = (await api.get("/v1/contacts", params={"q": "+44"}, headers=h)).json()["items"]
    assert [c["name"] for c in london] == ["Lovelace, Ada"]


async def test_import_updates_existing_phones(
    api: httpx.AsyncClient, world: dict[str, Tenant], tmp_path: Path
) -> None:
    h = world["A"].jwt_headers()
    made = (await _make(api, h, phone="+14155550120", name="Old", time_zone="UTC")).json()
    # Trailing empty columns, as spreadsheets export them, are ignored.
    text = "phone,name,consent,time_zone,,\n+14155550120,New,true,,,\n+14155550121,,,,,\n"
    out = (await _upload(api, h, _csv(tmp_path, text))).json()
    assert (out["created"], out["updated"], out["errors"]) == (1, 1, [])
    now = (await api.get(f"/v1/contacts/{made['id']}", headers=h)).json()
    # Non-empty cells applied, empty cells kept.
    assert (now["name"], now["time_zone"], now["consent"]) == ("New", "UTC", True)
    assert now["consent_at"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("+14155550101,Ada\n", "header line is missing"),
        ("name,number\nAda,+14155550101\n", "no 'phone' column"),
        ("phone,timezone\n+14155550101,UTC\n", "unknown column"),
        ("", "empty"),
    ],
)
async def test_import_file_level_errors(
    api: httpx.AsyncClient, world: dict[str, Tenant], tmp_path: Path, text: str, needle: str
) -> None:
    r = await _upload(api, world["A"].key_headers(), _csv(tmp_path, text))
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_csv" and needle in r.json()["error"]["message"]


async def test_import_not_utf8(
    api: httpx.AsyncClient, world: dict[str, Tenant], tmp_path: Path
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,phone\nJosé,+14155550101\n".encode("latin-1"))
    r = await _upload(api, world["A"].key_headers(), path)
    assert r.status_code == 422 and "UTF-8" in r.json()["error"]["message"]


async def test_import_wrong_content_types_are_415(
    api: httpx.AsyncClient, world: dict[str, Tenant], tmp_path: Path
) -> None:
    h = world["A"].key_headers()
    as_json = await api.post("/v1/contacts/import", json={"phone": "+1"}, headers=h)
    assert as_json.status_code == 415
    assert as_json.json()["error"]["code"] == "unsupported_media_type"
    png = await _upload(api, h, _csv(tmp_path, "phone\n+14155550101\n"), ctype="image/png")
    assert png.status_code == 415 and "image/png" in png.json()["error"]["message"]


async def test_import_too_large_is_413(
    api: httpx.AsyncClient,
    world: dict[str, Tenant],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = world["A"].key_headers()
    big = _csv(tmp_path, "phone,name\n" + "+14155550101," + "x" * 5_000_000 + "\n")
    r = await _upload(api, h, big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    monkeypatch.setattr(schemas_contacts_import, "MAX_ROWS", 2)
    rows = "phone\n" + "".join(f"+1415555{i:04d}\n" for i in range(3))
    r = await _upload(api, h, _csv(tmp_path, rows, name="rows.csv"))
    assert r.status_code == 413 and "more than 2 rows" in r.json()["error"]["message"]
