-- Timestamps at millisecond precision, the precision of JavaScript dates and of the API.
-- PostgreSQL's now() has microseconds; a list cursor carrying a millisecond value would
-- then fall between rows stamped in the same millisecond and page some of them twice.
-- Rounding at the column keeps every value the API can show exactly what is stored.
DO $$
DECLARE
  col record;
BEGIN
  FOR col IN
    SELECT c.table_name, c.column_name
      FROM information_schema.columns c
      JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
     WHERE c.table_schema = current_schema()
       AND t.table_type = 'BASE TABLE'
       AND c.data_type = 'timestamp with time zone'
       AND coalesce(c.datetime_precision, 6) > 3
  LOOP
    EXECUTE format('ALTER TABLE %I ALTER COLUMN %I TYPE timestamptz(3)', col.table_name, col.column_name);
  END LOOP;
END
$$;
