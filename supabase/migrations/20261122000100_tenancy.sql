-- Tenancy: organizations, memberships, API keys, and the helpers every row-level security
-- policy uses. A user reaches an organization's rows only through a membership row.
--
-- Conventions for every migration (see supabase/README.md): uuid ids, org_id on every tenant
-- table, created_at/updated_at with the updated_at trigger, RLS enabled with policies for the
-- `authenticated` role, functions with an explicit search_path, no BEGIN ATOMIC bodies.

create schema if not exists private;
grant usage on schema private to authenticated, service_role;

create or replace function private.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

-- ---------------------------------------------------------------------------------------------
-- organizations

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (char_length(name) between 1 and 200),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.organizations is 'A tenant. Every other table carries org_id.';

create trigger organizations_updated_at before update on public.organizations
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- memberships

create table public.memberships (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null default 'member' check (role in ('owner', 'admin', 'member')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (org_id, user_id)
);
comment on table public.memberships is
  'Who belongs to which organization. owner/admin manage memberships and API keys.';

create index memberships_user_id_idx on public.memberships (user_id, org_id, role);

create trigger memberships_updated_at before update on public.memberships
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- api_keys: the secret is shown once; only its prefix (for lookup) and hash are stored.

create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 200),
  prefix text not null unique check (char_length(prefix) between 4 and 64),
  key_hash text not null check (char_length(key_hash) >= 32),
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  last_used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on column public.api_keys.key_hash is 'Hash of the whole secret; the secret is never stored.';

create index api_keys_org_id_idx on public.api_keys (org_id, created_at desc);

create trigger api_keys_updated_at before update on public.api_keys
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Membership helpers. SECURITY DEFINER so that policies can read memberships without recursing
-- into the memberships policies; they only ever answer about the calling user (auth.uid()).

create or replace function private.member_org_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.org_id from public.memberships m where m.user_id = auth.uid()
$$;

create or replace function private.admin_org_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select m.org_id from public.memberships m
  where m.user_id = auth.uid() and m.role in ('owner', 'admin')
$$;

create or replace function private.is_member(org uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.memberships m where m.org_id = org and m.user_id = auth.uid()
  )
$$;

create or replace function private.has_role(org uuid, roles text[])
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1 from public.memberships m
    where m.org_id = org and m.user_id = auth.uid() and m.role = any (roles)
  )
$$;

-- Whoever creates an organization through the API (as a user) becomes its owner.
create or replace function private.add_creator_as_owner()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if auth.uid() is not null then
    insert into public.memberships (org_id, user_id, role)
    values (new.id, auth.uid(), 'owner')
    on conflict (org_id, user_id) do nothing;
  end if;
  return new;
end;
$$;

create trigger organizations_add_owner after insert on public.organizations
  for each row execute function private.add_creator_as_owner();

revoke all on function private.member_org_ids() from public;
revoke all on function private.admin_org_ids() from public;
revoke all on function private.is_member(uuid) from public;
revoke all on function private.has_role(uuid, text[]) from public;
grant execute on function private.member_org_ids() to authenticated, service_role;
grant execute on function private.admin_org_ids() to authenticated, service_role;
grant execute on function private.is_member(uuid) to authenticated, service_role;
grant execute on function private.has_role(uuid, text[]) to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Row-level security

alter table public.organizations enable row level security;
alter table public.memberships enable row level security;
alter table public.api_keys enable row level security;

create policy "members read their organizations" on public.organizations
  for select to authenticated
  using (id in (select private.member_org_ids()) or created_by = (select auth.uid()));
create policy "users create organizations" on public.organizations
  for insert to authenticated
  with check (created_by = (select auth.uid()));
create policy "admins update organizations" on public.organizations
  for update to authenticated
  using (id in (select private.admin_org_ids()))
  with check (id in (select private.admin_org_ids()));
create policy "owners delete organizations" on public.organizations
  for delete to authenticated
  using (private.has_role(id, array['owner']));

create policy "members read memberships" on public.memberships
  for select to authenticated
  using (org_id in (select private.member_org_ids()));
-- Admins manage members; only owners grant, change or remove the owner role.
create policy "admins add memberships" on public.memberships
  for insert to authenticated
  with check (
    org_id in (select private.admin_org_ids())
    and (role <> 'owner' or private.has_role(org_id, array['owner']))
  );
create policy "admins update memberships" on public.memberships
  for update to authenticated
  using (
    org_id in (select private.admin_org_ids())
    and (role <> 'owner' or private.has_role(org_id, array['owner']))
  )
  with check (
    org_id in (select private.admin_org_ids())
    and (role <> 'owner' or private.has_role(org_id, array['owner']))
  );
create policy "admins remove memberships, users leave" on public.memberships
  for delete to authenticated
  using (
    user_id = (select auth.uid())
    or (
      org_id in (select private.admin_org_ids())
      and (role <> 'owner' or private.has_role(org_id, array['owner']))
    )
  );

create policy "admins read api keys" on public.api_keys
  for select to authenticated
  using (org_id in (select private.admin_org_ids()));
create policy "admins create api keys" on public.api_keys
  for insert to authenticated
  with check (org_id in (select private.admin_org_ids()));
create policy "admins update api keys" on public.api_keys
  for update to authenticated
  using (org_id in (select private.admin_org_ids()))
  with check (org_id in (select private.admin_org_ids()));
create policy "admins delete api keys" on public.api_keys
  for delete to authenticated
  using (org_id in (select private.admin_org_ids()));

grant select, insert, update, delete on public.organizations, public.memberships,
  public.api_keys to authenticated, service_role;
