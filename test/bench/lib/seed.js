/**
 * Set-based seeding: a few hundred reference rows and N managed certificates in a
 * handful of INSERT ... SELECT FROM generate_series statements, then ANALYZE, so
 * 100,000 rows take seconds rather than minutes. Plain SQL that PGlite runs too.
 */
export const REFS = 50;

export const benchProfileId = (n) => `prof-bench-${String(n).padStart(2, '0')}`;

/** A stable pseudo-random integer 0..m-1 per row and purpose (hashtext exists on both databases). */
const pick = (salt, m) => `(abs(hashtext(g::text || '${salt}')) % ${m})`;

export async function seedCertificates(knex, rows) {
  await knex.raw(`INSERT INTO teams (id, name) SELECT 'team-bench-' || lpad(g::text, 2, '0'), 'bench team ' || g FROM generate_series(0, ${REFS - 1}) g`);
  await knex.raw(`INSERT INTO owners (id, name, email, team_id)
    SELECT 'owner-bench-' || lpad(g::text, 2, '0'), 'owner ' || g, 'owner' || g || '@example.com', 'team-bench-' || lpad(g::text, 2, '0')
      FROM generate_series(0, ${REFS - 1}) g`);
  await knex.raw(`INSERT INTO issuers (id, name, type) SELECT 'iss-bench-' || lpad(g::text, 2, '0'), 'bench issuer ' || g, 'local-ca' FROM generate_series(0, ${REFS - 1}) g`);
  await knex.raw(`INSERT INTO certificate_profiles (id, name) SELECT 'prof-bench-' || lpad(g::text, 2, '0'), 'bench profile ' || g FROM generate_series(0, ${REFS - 1}) g`);

  // Status mix (per 100): 58 Active, 10 Expiring, 8 Expired, 6 Pending, 3 RenewalInProgress,
  // 3 Failed, 5 Revoked, 7 Archived. expires_at agrees with the status; never-issued rows have none.
  await knex.raw(`
    INSERT INTO managed_certificates (id, name, common_name, sans, environment, status, owner_id, issuer_id, profile_id,
                                      serial_number, key_algorithm, key_size, not_before, expires_at, created_at, updated_at)
    SELECT 'mc-bench-' || lpad(g::text, 7, '0'),
           'cert ' || g,
           'host' || g || '.svc' || (g % 97) || '.example.com',
           jsonb_build_array('host' || g || '.example.com'),
           (ARRAY['production', 'staging', 'development'])[1 + ${pick('env', 3)}],
           s.status,
           'owner-bench-' || lpad(${pick('owner', REFS)}::text, 2, '0'),
           'iss-bench-' || lpad(${pick('issuer', REFS)}::text, 2, '0'),
           'prof-bench-' || lpad(${pick('profile', REFS)}::text, 2, '0'),
           CASE WHEN s.status = 'Pending' THEN NULL ELSE md5(g::text) END,
           'ECDSA', 256,
           CASE WHEN s.status = 'Pending' THEN NULL ELSE now() - interval '90 days' END,
           CASE s.status
             WHEN 'Pending' THEN NULL
             WHEN 'Expired' THEN now() - (1 + ${pick('exp', 200)}) * interval '1 day'
             WHEN 'Expiring' THEN now() + (1 + ${pick('exp', 29)}) * interval '1 day'
             ELSE now() + (30 + ${pick('exp', 570)}) * interval '1 day' + ${pick('sec', 86400)} * interval '1 second'
           END,
           now() - (${rows} - g) * interval '1 minute',
           now() - (${rows} - g) * interval '1 minute'
      FROM generate_series(1, ${rows}) g
      CROSS JOIN LATERAL (SELECT CASE
             WHEN ${pick('status', 100)} < 58 THEN 'Active'
             WHEN ${pick('status', 100)} < 68 THEN 'Expiring'
             WHEN ${pick('status', 100)} < 76 THEN 'Expired'
             WHEN ${pick('status', 100)} < 82 THEN 'Pending'
             WHEN ${pick('status', 100)} < 85 THEN 'RenewalInProgress'
             WHEN ${pick('status', 100)} < 88 THEN 'Failed'
             WHEN ${pick('status', 100)} < 93 THEN 'Revoked'
             ELSE 'Archived' END AS status) s`);
  // VACUUM as well as ANALYZE: a table that has been in use a while has its visibility map
  // set (autovacuum), which lets PostgreSQL answer count(*) from an index.
  await knex.raw('VACUUM ANALYZE');
}

/** Pending jobs of one type, inserted directly (for the raw-claim baseline). */
export async function seedJobs(knex, count, type, prefix) {
  await knex.raw(`INSERT INTO jobs (id, type, status, payload, scheduled_at, max_attempts)
    SELECT '${prefix}-' || lpad(g::text, 7, '0'), ?, 'Pending', '{}', now() - interval '1 second', 3 FROM generate_series(1, ${count}) g`, [type]);
  await knex.raw('ANALYZE jobs');
}
