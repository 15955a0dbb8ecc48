-- Agents and knowledge: agent configs (validated by the app, parley.config.AgentConfig),
-- knowledge bases, their documents, and the embedded chunks used for retrieval.

create schema if not exists extensions;
create extension if not exists vector with schema extensions;

-- ---------------------------------------------------------------------------------------------
-- agents: `config` is the AgentConfig JSON; `name` is derived from it so the two never differ.

create table public.agents (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  config jsonb not null check (jsonb_typeof(config) = 'object'),
  name text generated always as (config ->> 'name') stored not null,
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, org_id)
);
comment on column public.agents.config is
  'AgentConfig JSON, validated by the app before it is written.';
comment on column public.agents.name is 'Generated from config->>''name''; write the config.';

create index agents_org_created_idx on public.agents (org_id, created_at desc, id desc);
create index agents_org_name_idx on public.agents (org_id, name);

create trigger agents_updated_at before update on public.agents
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- knowledge_bases

create table public.knowledge_bases (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 200),
  description text,
  embedding_model text not null default 'all-MiniLM-L6-v2',
  created_by uuid default auth.uid() references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, org_id)
);

create index knowledge_bases_org_created_idx
  on public.knowledge_bases (org_id, created_at desc, id desc);

create trigger knowledge_bases_updated_at before update on public.knowledge_bases
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- documents: one source (pasted text, a URL or an uploaded file) and its ingestion status.

create table public.documents (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  knowledge_base_id uuid not null,
  title text not null default '',
  source_type text not null check (source_type in ('text', 'url', 'file')),
  source text,
  mime_type text,
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'ready', 'failed')),
  error text,
  bytes bigint check (bytes >= 0),
  chunk_count integer not null default 0 check (chunk_count >= 0),
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, org_id, knowledge_base_id),
  foreign key (knowledge_base_id, org_id)
    references public.knowledge_bases (id, org_id) on delete cascade
);
comment on column public.documents.source is 'The URL, or the uploaded file''s name.';

create index documents_kb_created_idx on public.documents (knowledge_base_id, created_at desc);
create index documents_org_created_idx on public.documents (org_id, created_at desc, id desc);
create index documents_todo_idx on public.documents (created_at)
  where status in ('pending', 'processing');

create trigger documents_updated_at before update on public.documents
  for each row execute function private.set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- chunks: all-MiniLM-L6-v2 embeddings (384 dimensions), cosine distance (<=>).

create table public.chunks (
  id uuid primary key default gen_random_uuid(),
  org_id uuid not null references public.organizations (id) on delete cascade,
  knowledge_base_id uuid not null,
  document_id uuid not null,
  ordinal integer not null check (ordinal >= 0),
  content text not null,
  embedding extensions.vector(384),
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (document_id, ordinal),
  foreign key (document_id, org_id, knowledge_base_id)
    references public.documents (id, org_id, knowledge_base_id) on delete cascade
);

create index chunks_kb_idx on public.chunks (knowledge_base_id);
create index chunks_org_idx on public.chunks (org_id);
create index chunks_embedding_idx on public.chunks
  using hnsw (embedding extensions.vector_cosine_ops);

create trigger chunks_updated_at before update on public.chunks
  for each row execute function private.set_updated_at();

-- Nearest chunks of one knowledge base. SECURITY INVOKER: row-level security applies, so a
-- user only ever gets chunks of their own organizations.
create or replace function public.match_chunks(
  query_embedding extensions.vector(384),
  knowledge_base uuid,
  match_count integer default 5
)
returns table (
  id uuid,
  document_id uuid,
  ordinal integer,
  content text,
  metadata jsonb,
  similarity double precision
)
language sql
stable
security invoker
set search_path = ''
as $$
  select c.id, c.document_id, c.ordinal, c.content, c.metadata,
         1 - (c.embedding operator(extensions.<=>) query_embedding) as similarity
  from public.chunks c
  where c.knowledge_base_id = knowledge_base and c.embedding is not null
  order by c.embedding operator(extensions.<=>) query_embedding
  limit match_count
$$;

grant execute on function public.match_chunks(extensions.vector, uuid, integer)
  to authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Row-level security: members of the organization read and write its rows.

alter table public.agents enable row level security;
alter table public.knowledge_bases enable row level security;
alter table public.documents enable row level security;
alter table public.chunks enable row level security;

create policy "members read agents" on public.agents
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create agents" on public.agents
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update agents" on public.agents
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete agents" on public.agents
  for delete to authenticated using (org_id in (select private.member_org_ids()));

create policy "members read knowledge bases" on public.knowledge_bases
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create knowledge bases" on public.knowledge_bases
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update knowledge bases" on public.knowledge_bases
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete knowledge bases" on public.knowledge_bases
  for delete to authenticated using (org_id in (select private.member_org_ids()));

create policy "members read documents" on public.documents
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create documents" on public.documents
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update documents" on public.documents
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete documents" on public.documents
  for delete to authenticated using (org_id in (select private.member_org_ids()));

create policy "members read chunks" on public.chunks
  for select to authenticated using (org_id in (select private.member_org_ids()));
create policy "members create chunks" on public.chunks
  for insert to authenticated with check (org_id in (select private.member_org_ids()));
create policy "members update chunks" on public.chunks
  for update to authenticated
  using (org_id in (select private.member_org_ids()))
  with check (org_id in (select private.member_org_ids()));
create policy "members delete chunks" on public.chunks
  for delete to authenticated using (org_id in (select private.member_org_ids()));

grant select, insert, update, delete on public.agents, public.knowledge_bases,
  public.documents, public.chunks to authenticated, service_role;
