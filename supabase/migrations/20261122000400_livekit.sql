-- LiveKit: webhook deliveries already handled, so that a retried or duplicated delivery (LiveKit
-- retries on timeouts; every API replica receives what its load balancer sends it) changes a
-- call at most once. The API inserts the event id first (`on conflict do nothing`) and applies
-- the event only when the insert wrote a row.

create table private.livekit_webhook_events (
  id text primary key check (char_length(id) between 1 and 200),
  event text not null,
  room_name text,
  received_at timestamptz not null default now()
);
comment on table private.livekit_webhook_events is
  'LiveKit webhook event ids already applied (dedup across API replicas).';

-- For pruning old ids: delete ... where received_at < now() - interval '7 days'.
create index livekit_webhook_events_received_idx
  on private.livekit_webhook_events (received_at);

-- Not exposed to API roles; RLS on (no policies) like every other private table.
alter table private.livekit_webhook_events enable row level security;
