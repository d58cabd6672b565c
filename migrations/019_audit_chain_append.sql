-- Audit appends in one round trip: lock the chain, read its head, link and insert the rows.
--
-- The chain's advisory lock is held from the append to the commit, so the round trips an
-- append makes while holding it are what every other writer (another issuance batch,
-- another replica) waits for. Doing the head read and the insert here leaves only the
-- commit after it. The head read needs a fresh snapshot after the lock is taken (in READ
-- COMMITTED a statement sees what was committed when it began); a VOLATILE function takes
-- one for each statement it runs.
--
-- Each row's hash is SHA-256 over the canonical JSON array of its hashed columns, exactly
-- as kernel/src/audit/chain.ts computes it (and verifies it): the kernel sends each row's
-- canonical JSON without its first element (seq) and last (prev_hash), and the array is
-- completed here once seq and prev_hash are known. prev_hash and hash are lowercase hex.
CREATE OR REPLACE FUNCTION certctl_audit_append(
  lock_key bigint, ids text[], occurred_at timestamptz[], category text[], actor text[], actor_type text[], action text[],
  resource_type text[], resource_id text[], method text[], path text[], status_code integer[], latency_ms integer[],
  body_sha256 text[], request_id text[], details text[], hashed text[]
)
RETURNS TABLE (seq bigint, prev_hash text, hash text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_variable
DECLARE
  at bigint;
  prev text;
  h text;
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  SELECT a.seq, a.hash INTO at, prev FROM audit_events a ORDER BY a.seq DESC LIMIT 1;
  at := coalesce(at, 0);
  prev := coalesce(prev, repeat('0', 64));
  FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
    at := at + 1;
    h := encode(sha256(convert_to('[' || at::text || ',' || hashed[i] || ',"' || prev || '"]', 'UTF8')), 'hex');
    INSERT INTO audit_events (seq, id, occurred_at, category, actor, actor_type, action, resource_type, resource_id, method, path,
                              status_code, latency_ms, body_sha256, request_id, details, prev_hash, hash)
    VALUES (at, ids[i], occurred_at[i], category[i], actor[i], actor_type[i], action[i], resource_type[i], resource_id[i], method[i], path[i],
            status_code[i], latency_ms[i], body_sha256[i], request_id[i], details[i]::jsonb, prev, h);
    seq := at;
    prev_hash := prev;
    hash := h;
    RETURN NEXT;
    prev := h;
  END LOOP;
END
$$;
