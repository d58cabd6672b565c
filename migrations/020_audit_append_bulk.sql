-- certctl_audit_append (migration 019) inserts its rows with one statement instead of one per row.
--
-- The rows are still linked one after another (each hash covers the previous one), but a
-- plpgsql INSERT per row paid the executor's start-up and shut-down for every row: about
-- 21 us each, most of the function's time on a 70-row issuance batch, all of it while the
-- chain's lock is held. Same arguments, same result, same hashes.
CREATE OR REPLACE FUNCTION certctl_audit_append(
  lock_key bigint, ids text[], occurred_at timestamptz[], category text[], actor text[], actor_type text[], action text[],
  resource_type text[], resource_id text[], method text[], path text[], status_code integer[], latency_ms integer[],
  body_sha256 text[], request_id text[], details text[], hashed text[]
)
RETURNS TABLE (seq bigint, prev_hash text, hash text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_variable
DECLARE
  n integer := coalesce(array_length(ids, 1), 0);
  at bigint;
  prev text;
  seqs bigint[] := '{}';
  prevs text[] := '{}';
  hashes text[] := '{}';
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  SELECT a.seq, a.hash INTO at, prev FROM audit_events a ORDER BY a.seq DESC LIMIT 1;
  at := coalesce(at, 0);
  prev := coalesce(prev, repeat('0', 64));
  FOR i IN 1 .. n LOOP
    at := at + 1;
    seqs[i] := at;
    prevs[i] := prev;
    prev := encode(sha256(convert_to('[' || at::text || ',' || hashed[i] || ',"' || prev || '"]', 'UTF8')), 'hex');
    hashes[i] := prev;
  END LOOP;
  INSERT INTO audit_events (seq, id, occurred_at, category, actor, actor_type, action, resource_type, resource_id, method, path,
                            status_code, latency_ms, body_sha256, request_id, details, prev_hash, hash)
  SELECT * FROM unnest(seqs, ids, occurred_at, category, actor, actor_type, action, resource_type, resource_id, method, path,
                       status_code, latency_ms, body_sha256, request_id, details::jsonb[], prevs, hashes);
  RETURN QUERY SELECT u.s, u.p, u.h FROM unnest(seqs, prevs, hashes) AS u(s, p, h) ORDER BY u.s;
END
$$;
