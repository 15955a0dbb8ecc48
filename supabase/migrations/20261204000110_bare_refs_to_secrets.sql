-- Tool headers stored before secrets existed read the server's environment as ${NAME} (any
-- case). Every bare ${name} is now refused when a config is loaded, so rewrite each to
-- ${secrets.name}: the agent stays loadable and the runtime says which secret is missing until
-- the organization stores it. Idempotent (${secrets.X} has a dot and never matches).
update public.agents a
set config = jsonb_set(
  a.config, '{tools}',
  (
    select jsonb_agg(
      case when jsonb_typeof(t -> 'headers') = 'object' then jsonb_set(t, '{headers}', (
        select coalesce(jsonb_object_agg(
          h.key,
          to_jsonb(regexp_replace(h.value, '\$\{([A-Za-z_][A-Za-z0-9_]*)\}', '${secrets.\1}', 'g'))
        ), '{}'::jsonb)
        from jsonb_each_text(t -> 'headers') h
      )) else t end
      order by ord
    )
    from jsonb_array_elements(a.config -> 'tools') with ordinality as x (t, ord)
  )
)
where jsonb_typeof(a.config -> 'tools') = 'array'
  and jsonb_array_length(a.config -> 'tools') > 0
  and exists (
    select 1
    from jsonb_array_elements(a.config -> 'tools') t
    cross join lateral jsonb_each_text(
      case when jsonb_typeof(t -> 'headers') = 'object' then t -> 'headers' else '{}' end
    ) h
    where h.value ~ '\$\{[A-Za-z_][A-Za-z0-9_]*\}'
  );
