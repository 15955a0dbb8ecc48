"""Row-level security, checked in SQL as real users of two organizations, for every table."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest

from parley.db.errors import DatabaseError
from parley.db.pool import as_anon, as_user
from tests.db.conftest import AGENT_CONFIG, TABLES, Org, insert, new_row

# A column each table lets its owners change, and the new value.
UPDATES: dict[str, tuple[str, object]] = {
    "organizations": ("name", "Renamed"),
    "memberships": ("role", "admin"),
    "api_keys": ("name", "renamed"),
    "agents": ("config", json.dumps({**AGENT_CONFIG, "name": "Renamed"})),
    "knowledge_bases": ("name", "renamed"),
    "documents": ("title", "renamed"),
    "chunks": ("content", "renamed"),
    "contacts": ("name", "renamed"),
    "calls": ("end_reason", "renamed"),
    "call_turns": ("text", "renamed"),
    "call_analysis": ("summary", "renamed"),
}
RLS_VIOLATION = asyncpg.InsufficientPrivilegeError  # SQLSTATE 42501


def org_col(table: str) -> str:
    return "id" if table == "organizations" else "org_id"


async def count(conn: asyncpg.Connection, sql: str, *args: object) -> int:
    n: int = await conn.fetchval(sql, *args)
    return n


async def test_rls_enabled_everywhere(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "select n.nspname || '.' || c.relname as name, c.relrowsecurity as rls,"
        " (select count(*) from pg_policies p where p.schemaname = n.nspname"
        "  and p.tablename = c.relname) as policies"
        " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname in ('public', 'private') and c.relkind in ('r', 'p')"
    )
    tables = {r["name"]: r for r in rows}
    assert {f"public.{t}" for t in TABLES} <= set(tables)
    assert [n for n, r in tables.items() if not r["rls"]] == []
    assert [n for n, r in tables.items() if n.startswith("public.") and r["policies"] < 4] == []
    org_id_missing = await conn.fetch(
        "select table_name from information_schema.tables t where table_schema = 'public'"
        " and table_type = 'BASE TABLE' and table_name <> 'organizations' and not exists ("
        " select 1 from information_schema.columns c where c.table_schema = 'public'"
        " and c.table_name = t.table_name and c.column_name = 'org_id')"
    )
    assert org_id_missing == []


@pytest.mark.parametrize("table", TABLES)
async def test_tenant_isolation(
    conn: asyncpg.Connection, world: dict[str, Org], table: str
) -> None:
    a, b = world["A"], world["B"]
    col = org_col(table)
    a_row, b_row = a.rows[table], b.rows[table]

    # select: A sees only org A's rows; B gets 0 rows (not an error) for A's row.
    async with as_user(conn, a.owner):
        assert await count(conn, f"select count(*) from public.{table}") >= 1
        assert (
            await count(conn, f"select count(*) from public.{table} where {col} <> $1", a.id) == 0
        )
    async with as_user(conn, b.owner):
        assert await count(conn, f"select count(*) from public.{table} where id = $1", a_row) == 0
        assert await count(conn, f"select count(*) from public.{table} where {col} = $1", a.id) == 0
        assert await count(conn, f"select count(*) from public.{table} where id = $1", b_row) == 1

    # insert: into A works (and the row can be read back); with B's org_id it is refused.
    async with as_user(conn, a.owner):
        new_id = await insert(conn, table, new_row(table, a, n=7))
        assert await count(conn, f"select count(*) from public.{table} where id = $1", new_id) == 1
    foreign = new_row(table, b, n=8)
    if table == "organizations":
        foreign["created_by"] = b.owner
    if table == "call_analysis":
        foreign["call_id"] = b.rows["spare_call"]
    with pytest.raises(RLS_VIOLATION, match="row-level security"):
        async with as_user(conn, a.owner):
            await insert(conn, table, foreign)

    # update: A's own row changes; B's row is invisible (0 rows); moving a row to B is refused.
    column, value = UPDATES[table]
    async with as_user(conn, a.owner):
        sql = f"update public.{table} set {column} = $1 where id = $2"
        assert await conn.execute(sql, value, a_row) == "UPDATE 1"
        assert await conn.execute(sql, value, b_row) == "UPDATE 0"
    if table != "organizations":
        with pytest.raises(RLS_VIOLATION, match="row-level security"):
            async with as_user(conn, a.owner):
                await conn.execute(
                    f"update public.{table} set org_id = $1 where id = $2", b.id, a_row
                )

    # delete: B's row is untouched; A's goes.
    async with as_user(conn, a.owner):
        assert await conn.execute(f"delete from public.{table} where id = $1", b_row) == "DELETE 0"
        assert await conn.execute(f"delete from public.{table} where id = $1", a_row) == "DELETE 1"
    assert await count(conn, f"select count(*) from public.{table} where id = $1", b_row) == 1

    # anon: sees nothing and writes nothing.
    async with as_anon(conn):
        assert await count(conn, f"select count(*) from public.{table}") == 0
    with pytest.raises(RLS_VIOLATION):
        async with as_anon(conn):
            await insert(conn, table, new_row(table, b, n=9))


async def test_no_claims_means_no_rows(conn: asyncpg.Connection, world: dict[str, Org]) -> None:
    """authenticated without a user id (auth.uid() is null) sees nothing."""
    async with as_user(conn, None):
        for table in TABLES:
            assert await count(conn, f"select count(*) from public.{table}") == 0


async def test_service_role_bypasses_rls(conn: asyncpg.Connection, world: dict[str, Org]) -> None:
    async with as_user(conn, None, role="service_role"):
        assert await count(conn, "select count(*) from public.organizations") == 2


async def test_members_cannot_manage_keys_memberships_or_org(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    a = world["A"]
    assert a.member is not None
    async with as_user(conn, a.member):
        assert await count(conn, "select count(*) from public.agents") == 1
        assert await count(conn, "select count(*) from public.memberships") == 2
        assert await count(conn, "select count(*) from public.api_keys") == 0
        await insert(conn, "agents", new_row("agents", a))
        sql = "update public.organizations set name = 'x' where id = $1"
        assert await conn.execute(sql, a.id) == "UPDATE 0"
        assert await conn.execute("delete from public.organizations where id = $1", a.id) == (
            "DELETE 0"
        )
    for table in ("api_keys", "memberships"):
        with pytest.raises(RLS_VIOLATION):
            async with as_user(conn, a.member):
                await insert(conn, table, new_row(table, a))
    async with as_user(conn, a.member):  # but may leave
        sql = "delete from public.memberships where user_id = $1"
        assert await conn.execute(sql, a.member) == "DELETE 1"


async def test_admins_manage_members_but_not_owners(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    a = world["A"]
    await conn.execute("update public.memberships set role = 'admin' where user_id = $1", a.member)
    async with as_user(conn, a.member):
        await insert(conn, "memberships", new_row("memberships", a))
        assert await count(conn, "select count(*) from public.api_keys") == 1
        sql = "update public.memberships set role = 'member' where user_id = $1"
        assert await conn.execute(sql, a.owner) == "UPDATE 0"
    owner_row = {**new_row("memberships", a), "role": "owner"}
    owner_row["user_id"] = await conn.fetchval("insert into auth.users default values returning id")
    with pytest.raises(RLS_VIOLATION):
        async with as_user(conn, a.member):
            await insert(conn, "memberships", owner_row)


async def test_creating_an_organization_makes_you_its_owner(
    conn: asyncpg.Connection, world: dict[str, Org]
) -> None:
    b = world["B"]
    async with as_user(conn, b.member):
        org_id = await insert(conn, "organizations", {"name": "New org"})
        role = await conn.fetchval(
            "select role from public.memberships where org_id = $1 and user_id = $2",
            org_id,
            b.member,
        )
        assert role == "owner"
        assert await count(conn, "select count(*) from public.organizations") == 2


async def test_auth_uid_sees_the_user(conn: asyncpg.Connection) -> None:
    user = uuid.uuid4()
    async with as_user(conn, user, claims={"email": "u@example.com"}):
        row = await conn.fetchrow(
            "select auth.uid() as uid, auth.role() as role, auth.email() as email,"
            " auth.jwt() ->> 'sub' as sub, current_user as who"
        )
    assert row is not None
    assert (row["uid"], row["role"], row["email"]) == (user, "authenticated", "u@example.com")
    assert (row["sub"], row["who"]) == (str(user), "authenticated")
    # Everything was transaction-local.
    assert await conn.fetchval("select auth.uid()") is None
    assert await conn.fetchval("select current_user") == "postgres"


async def test_as_user_refuses_to_nest_or_unknown_roles(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        with pytest.raises(DatabaseError, match="outside any transaction"):
            async with as_user(conn, uuid.uuid4()):
                pass
    with pytest.raises(DatabaseError, match="role must be one of"):
        async with as_user(conn, uuid.uuid4(), role="postgres"):  # type: ignore[arg-type]
            pass


async def test_pool_connections_work_as_users(db_pool: asyncpg.Pool, world: dict[str, Org]) -> None:
    a = world["A"]
    async with db_pool.acquire() as c, as_user(c, a.owner):
        assert await c.fetchval("select count(*) from public.organizations") == 1
    async with db_pool.acquire() as c:  # released connections carry no role or claims
        assert await c.fetchval("select current_user") == "postgres"
        assert await c.fetchval("select auth.uid()") is None
