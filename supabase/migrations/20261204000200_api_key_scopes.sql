-- API keys get a kind and scopes. Secret keys (pk_...) carry scopes; publishable browser keys
-- (pub_...) may only list their agents and start web sessions for them, from their origins.
-- Existing keys keep every scope but key administration (any key could manage keys before).
alter table public.api_keys
  add column kind text not null default 'secret' check (kind in ('secret', 'publishable')),
  add column scopes text[] not null default array['agents', 'knowledge', 'contacts', 'calls']
    check (scopes <@ array['agents', 'knowledge', 'contacts', 'calls', 'admin']),
  add column agent_ids uuid[] check (agent_ids is null or cardinality(agent_ids) <= 100),
  add column allowed_origins text[] not null default '{}'
    check (cardinality(allowed_origins) <= 20),
  add column expires_at timestamptz;

comment on column public.api_keys.agent_ids is
  'Publishable keys: the agents they may list and start sessions for.';
