-- The audit chain's head, read under the chain's lock in one round trip.
--
-- Every append takes a transaction-scoped advisory lock and then reads the last row, so
-- appends from several connections and replicas link into one chain. The read must come
-- after the lock is held: in READ COMMITTED a statement sees what was committed when it
-- began, so a head read in the same statement as the lock wait could miss the append
-- that held the lock. A VOLATILE function takes a fresh snapshot for each statement it
-- runs, so the read inside it, after the lock, sees the last committed append. This
-- saves the separate lock statement on every append (issuance stores hold the lock for
-- the rest of their transaction, so its round trips are what other writers wait for).
CREATE OR REPLACE FUNCTION certctl_audit_chain_head(lock_key bigint)
RETURNS TABLE (seq bigint, hash text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key);
  RETURN QUERY SELECT a.seq, a.hash FROM audit_events a ORDER BY a.seq DESC LIMIT 1;
END
$$;
