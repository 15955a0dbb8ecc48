-- Contacts and calls: who is called (E.164 phone, IANA time zone, consent), each call's
-- lifecycle, its turns with per-turn latencies, and the post-call analysis.

-- IANA zone names known to this server, for contacts.time_zone (a foreign key is fast, exact,
-- and safe for dump/restore, unlike a CHECK that queries pg_timezone_names).
create table private.time_zones (name text primary key);
insert into private.time_zones (name)
  select name from pg_catalog.pg_timezone_names
  where name !~ '^(posix|right)/' and name not in ('localtime', 'posixrules', 'Factory')
  on conflict do nothing;
-- Not exposed to API roles; RLS on (no policies) like every other table.
alter table private.time_zones enable row level security;

-- ---------------------------------------------------------------------------------------------
-- contacts

create table public.contacts (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  phone text not null constraint contacts_phone_e164 check (phone ~ '^\+[1-9][0-9]{1,14}$'),
  name text,
  time_zone text references private.time_zones (name),
  consent boolean not null default false,
  consent_at timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint contacts_consent_at check (not consent or consent_at is not null),
  unique (org_id, phone),
  unique (id, org_id)
);
comment on column public.contacts.phone is 'E.164, e.g. +14155550123.';
comment on column public.contacts.time_zone is 'IANA zone, e.g. America/New_York; null = unknown.';
comment on column public.contacts.consent_at is 'When consent was given; required when consent.';

create index contacts_org_created_idx on public.contacts (org_id, created_at desc, id desc);

create trigger contacts_updated_at before update on public.contacts
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- calls: created → ringing → in_progress → completed, or failed / no_answer on the way.

create table public.calls (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  agent_id uuid,
  contact_id uuid,
  direction text not null check (direction in ('inbound', 'outbound', 'web')),
  status text not null default 'created' constraint calls_status_check
    check (status in ('created', 'ringing', 'in_progress', 'completed', 'failed', 'no_answer')),
  end_reason text,
  room_name text,
  from_number text check (from_number ~ '^\+[1-9][0-9]{1,14}$'),
  to_number text check (to_number ~ '^\+[1-9][0-9]{1,14}$'),
  started_at timestamptz,
  answered_at timestamptz,
  ended_at timestamptz,
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint calls_times_ordered check (ended_at is null or started_at is null
                                        or ended_at >= started_at),
  unique (id, org_id),
  foreign key (agent_id, org_id)
    references public.agents (id, org_id) on delete set null (agent_id),
  foreign key (contact_id, org_id)
    references public.contacts (id, org_id) on delete set null (contact_id)
);

-- Cursor pagination: where org_id = $1 and (created_at, id) < ($2, $3)
-- order by created_at desc, id desc.
create index calls_org_created_idx on public.calls (org_id, created_at desc, id desc);
create index calls_agent_idx on public.calls (agent_id) where agent_id is not null;
create index calls_contact_idx on public.calls (contact_id) where contact_id is not null;
create index calls_room_name_idx on public.calls (room_name) where room_name is not null;

create or replace function private.check_call_status()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.status is distinct from old.status and not (
    (old.status = 'created' and new.status in ('ringing', 'in_progress', 'failed', 'no_answer'))
    or (old.status = 'ringing' and new.status in ('in_progress', 'failed', 'no_answer'))
    or (old.status = 'in_progress' and new.status in ('completed', 'failed'))
  ) then
    raise exception 'call % cannot go from % to %', old.id, old.status, new.status
      using errcode = 'check_violation',
            hint = 'created → ringing → in_progress → completed; failed or no_answer end it early';
  end if;
  return new;
end;
$$;

create trigger calls_status_transition before update of status on public.calls
  for each row execute function private.check_call_status();
create trigger calls_updated_at before update on public.calls
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- call_turns: one row per user/assistant/tool turn, with the latencies measured for it.

create table public.call_turns (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  call_id uuid not null,
  idx integer not null check (idx >= 0),
  role text not null check (role in ('user', 'assistant', 'tool')),
  text text not null default '',
  started_at timestamptz,
  ended_at timestamptz,
  interrupted boolean not null default false,
  stt_final_ms integer check (stt_final_ms >= 0),
  llm_first_token_ms integer check (llm_first_token_ms >= 0),
  tts_first_audio_ms integer check (tts_first_audio_ms >= 0),
  voice_to_voice_ms integer check (voice_to_voice_ms >= 0),
  knowledge_chunk_ids uuid[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (call_id, idx),
  foreign key (call_id, org_id) references public.calls (id, org_id) on delete cascade
);
comment on column public.call_turns.knowledge_chunk_ids is 'chunks.id used to answer this turn.';

create index call_turns_org_idx on public.call_turns (org_id);

create trigger call_turns_updated_at before update on public.call_turns
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- call_analysis: one summary per call, written after it ends.

create table public.call_analysis (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  call_id uuid not null unique,
  summary text,
  sentiment text check (sentiment in ('positive', 'neutral', 'negative', 'mixed')),
  outcome text,
  data jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  foreign key (call_id, org_id) references public.calls (id, org_id) on delete cascade
);

create index call_analysis_org_idx on public.call_analysis (org_id);

create trigger call_analysis_updated_at before update on public.call_analysis
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Row-level security: members of the organization read and write its rows.

alter table public.contacts enable row level security;
alter table public.calls enable row level security;
alter table public.call_turns enable row level security;
alter table public.call_analysis enable row level security;

create policy "members read contacts" on public.contacts
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create contacts" on public.contacts
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update contacts" on public.contacts
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete contacts" on public.contacts
  for delete to authenticated using (org_id in (select private.member_org_ids()));

create policy "members read calls" on public.calls
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create calls" on public.calls
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update calls" on public.calls
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete calls" on public.calls
  for delete to authenticated using (org_id in (select private.member_org_ids()));

create policy "members read call turns" on public.call_turns
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create call turns" on public.call_turns
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update call turns" on public.call_turns
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete call turns" on public.call_turns
  for delete to authenticated using (org_id in (select private.member_org_ids()));

create policy "members read call analysis" on public.call_analysis
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create call analysis" on public.call_analysis
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update call analysis" on public.call_analysis
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete call analysis" on public.call_analysis
  for delete to authenticated using (org_id in (select private.member_org_ids()));

grant select, insert, update, delete on public.contacts, public.calls, public.call_turns,
  public.call_analysis to authenticated, service_role;
