-- Local development data: one user, one organization, a sample agent and knowledge base.
-- Applied by `supabase db reset` and `parley db reset` (never by `migrate`). Idempotent.
-- The agent config must stay valid for parley.config.AgentConfig (tests/db check it).

insert into auth.users (id, email)
values ('00000000-0000-4000-8000-000000000001', 'dev@parley.local')
on conflict (id) do nothing;

insert into public.organizations (id, name, created_by)
values ('00000000-0000-4000-8000-0000000000a1', 'Parley Dev',
        '00000000-0000-4000-8000-000000000001')
on conflict (id) do nothing;

insert into public.memberships (org_id, user_id, role)
values ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', 'owner')
on conflict (org_id, user_id) do nothing;

insert into public.agents (id, org_id, config)
values (
  '00000000-0000-4000-8000-0000000000b1',
  '00000000-0000-4000-8000-0000000000a1',
  '{
    "name": "Front desk",
    "system_prompt": "You answer the phone for a small dental clinic. Be brief and friendly. Offer to book, move or cancel appointments.",
    "greeting": "Hello, this is the front desk. How can I help?",
    "language": "en",
    "tools": [{"type": "end_call"}]
  }'::jsonb
)
on conflict (id) do nothing;

insert into public.knowledge_bases (id, org_id, name, description)
values ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000a1',
        'Clinic FAQ', 'Opening hours, prices and policies.')
on conflict (id) do nothing;
