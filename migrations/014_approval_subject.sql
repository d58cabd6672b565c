-- What an issuance approval is about: the certificate's names, issuer and profile when the
-- request was opened ({"common_name", "sans", "issuer_id", "profile_id"}). An approver decides
-- on these values; approving is refused if the certificate no longer matches them, and the
-- certificate's names cannot change while its issuing job is open, so what is issued is what
-- was approved. NULL for profile_edit requests (their proposed_change is fixed already).
ALTER TABLE approval_requests ADD COLUMN IF NOT EXISTS subject jsonb;

-- Requests opened before this column existed get the certificate as it is now.
UPDATE approval_requests r
   SET subject = jsonb_build_object('common_name', c.common_name, 'sans', c.sans, 'issuer_id', c.issuer_id, 'profile_id', c.profile_id)
  FROM managed_certificates c
 WHERE r.kind = 'cert_issuance' AND r.status = 'pending' AND r.subject IS NULL AND c.id = r.certificate_id;
