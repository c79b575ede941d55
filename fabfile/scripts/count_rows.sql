-- Every table's exact row count as one JSON object {"schema.table": rows}, read by
-- backup.sh inside the dump's own snapshot and by verify_backup.sh after a restore.
SELECT coalesce(json_object_agg(counted.name, counted.rows ORDER BY counted.name), '{}')
FROM (
  SELECT format('%I.%I', n.nspname, c.relname) AS name,
         (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname),
                                              false, true, '')))[1]::text::bigint AS rows
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
) counted;
