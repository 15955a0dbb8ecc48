-- Calls and their turns and analysis are written by the service (workers, the API's
-- lifecycle code). Members read them; only owners and admins may change or delete them.
drop policy "members update calls" on public.calls;
drop policy "members delete calls" on public.calls;
drop policy "members update call turns" on public.call_turns;
drop policy "members delete call turns" on public.call_turns;
drop policy "members update call analysis" on public.call_analysis;
drop policy "members delete call analysis" on public.call_analysis;

create policy "admins update calls" on public.calls for update to authenticated
  using (org_id in (select private.admin_org_ids()))
  with check (org_id in (select private.admin_org_ids()));
create policy "admins delete calls" on public.calls for delete to authenticated
  using (org_id in (select private.admin_org_ids()));
create policy "admins update call turns" on public.call_turns for update to authenticated
  using (org_id in (select private.admin_org_ids()))
  with check (org_id in (select private.admin_org_ids()));
create policy "admins delete call turns" on public.call_turns for delete to authenticated
  using (org_id in (select private.admin_org_ids()));
create policy "admins update call analysis" on public.call_analysis for update to authenticated
  using (org_id in (select private.admin_org_ids()))
  with check (org_id in (select private.admin_org_ids()));
create policy "admins delete call analysis" on public.call_analysis for delete to authenticated
  using (org_id in (select private.admin_org_ids()));
