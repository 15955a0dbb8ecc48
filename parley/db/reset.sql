-- Drops everything the migrations created, keeping what Supabase or the shim own: schema public
-- itself with its grants and default privileges, extensions, and schema auth (whose users are
-- emptied only when they are the shim's stand-in). Run by parley.db.migrate.reset under the
-- migration lock, then the migrations and seed.sql are applied again.

do $$
declare
  stmt text;
begin
  for stmt in
    select format('drop %s if exists %I.%I cascade',
                  case c.relkind when 'v' then 'view' when 'm' then 'materialized view'
                                 when 'f' then 'foreign table' when 'S' then 'sequence'
                                 else 'table' end,
                  n.nspname, c.relname)
    from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S')
      and not exists (select 1 from pg_catalog.pg_depend d
                      where d.classid = 'pg_catalog.pg_class'::regclass
                        and d.objid = c.oid and d.deptype = 'e')
    order by case c.relkind when 'r' then 0 when 'p' then 0 else 1 end
  loop
    execute stmt;
  end loop;

  for stmt in
    select format('drop %s if exists %I.%I(%s) cascade',
                  case p.prokind when 'p' then 'procedure' when 'a' then 'aggregate'
                                 else 'function' end,
                  n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid))
    from pg_catalog.pg_proc p
    join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public'
      and not exists (select 1 from pg_catalog.pg_depend d
                      where d.classid = 'pg_catalog.pg_proc'::regclass
                        and d.objid = p.oid and d.deptype = 'e')
  loop
    execute stmt;
  end loop;

  for stmt in
    select format('drop %s if exists %I.%I cascade',
                  case t.typtype when 'd' then 'domain' else 'type' end, n.nspname, t.typname)
    from pg_catalog.pg_type t
    join pg_catalog.pg_namespace n on n.oid = t.typnamespace
    left join pg_catalog.pg_class c on c.oid = t.typrelid
    where n.nspname = 'public'
      and (t.typtype in ('e', 'd', 'r', 'm') or (t.typtype = 'c' and c.relkind = 'c'))
      and not exists (select 1 from pg_catalog.pg_depend d
                      where d.classid = 'pg_catalog.pg_type'::regclass
                        and d.objid = t.oid and d.deptype = 'e')
  loop
    execute stmt;
  end loop;
end
$$;

drop schema if exists private cascade;
drop schema if exists supabase_migrations cascade;

do $$
begin
  if pg_catalog.obj_description(pg_catalog.to_regclass('auth.users'), 'pg_class')
       like 'parley shim:%' then
    truncate auth.users cascade;
  end if;
end
$$;
