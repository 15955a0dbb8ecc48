-- Organization secrets: named values agent configs reference as ${secrets.NAME} (HTTP tool
-- headers, provider api_key). Write-only through the API; stored encrypted with AES-GCM under
-- a server key (parley/secrets.py); the AAD binds each ciphertext to its organization and name.
create table private.org_secrets (
  org_id uuid not null references public.organizations (id) on delete cascade,
  name text not null check (name ~ '^[A-Z][A-Z0-9_]{0,63}$'),
  ciphertext bytea not null,
  nonce bytea not null check (octet_length(nonce) = 12),
  key_id text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (org_id, name)
);
comment on table private.org_secrets is
  'Encrypted organization secrets (values never leave the service path decrypted).';

create trigger org_secrets_updated_at before update on private.org_secrets
  for each row execute function private.set_updated_at();

-- Not exposed to API roles; RLS on (no policies) like every other private table.
alter table private.org_secrets enable row level security;

-- Stored tool headers that read the server's environment (${NAME}) are rewritten by
-- 20261204000110_bare_refs_to_secrets.sql.
