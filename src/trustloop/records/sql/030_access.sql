-- Schema access: one grant row per ephemeral role, written by the lease engine,
-- read by row-level security through the SECURITY DEFINER functions below (keyed by
-- session_user, so a role only ever finds its own row). Ephemeral roles get no
-- privilege on the table itself.

CREATE SCHEMA IF NOT EXISTS access AUTHORIZATION trustloop_lease_engine;
ALTER SCHEMA access OWNER TO trustloop_lease_engine;
REVOKE ALL ON SCHEMA access FROM PUBLIC;

CREATE TABLE IF NOT EXISTS access.grants (
    role_name      text PRIMARY KEY,
    jti            text NOT NULL UNIQUE,
    clinician_sub  text NOT NULL,
    rar_type       text NOT NULL,
    action         text NOT NULL,
    resource_id    text NOT NULL,   -- the bare id: "Patient/<id>" is stored as "<id>"
    stepped_up     boolean NOT NULL DEFAULT false,
    expires_at     timestamptz NOT NULL
);
-- Writes (docs/contracts.md, "Writes"): the SHA-256 of the one change the
-- clinician consented to, and when the grant's one write was made.
ALTER TABLE access.grants ADD COLUMN IF NOT EXISTS change_sha256 text;
ALTER TABLE access.grants ADD COLUMN IF NOT EXISTS used_at timestamptz;
ALTER TABLE access.grants DROP CONSTRAINT IF EXISTS grants_write_names_change;
ALTER TABLE access.grants ADD CONSTRAINT grants_write_names_change CHECK (
    CASE WHEN action IN ('write_note', 'update_medication')
         THEN change_sha256 ~ '^[0-9a-f]{64}$'
         ELSE change_sha256 IS NULL END
);
ALTER TABLE access.grants OWNER TO trustloop_lease_engine;
REVOKE ALL ON access.grants FROM PUBLIC;
CREATE INDEX IF NOT EXISTS grants_expires_at_idx ON access.grants (expires_at);

-- Every OBO jti the lease engine has redeemed, kept until the token has expired:
-- the replay check that survives a restart of Vault (its own ledger is in memory)
-- and outlives the grant row, which the revoke deletes.
CREATE TABLE IF NOT EXISTS access.redeemed_jtis (
    jti         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
ALTER TABLE access.redeemed_jtis OWNER TO trustloop_lease_engine;
REVOKE ALL ON access.redeemed_jtis FROM PUBLIC;
CREATE INDEX IF NOT EXISTS redeemed_jtis_expires_at_idx
    ON access.redeemed_jtis (expires_at);

-- patient_record|read: rows of that one patient; a sensitive patient only with a
-- grant made from a stepped-up OBO. Expired grants allow nothing.
CREATE OR REPLACE FUNCTION access.can_read_patient(p_patient_id text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1
          FROM access.grants AS g
          JOIN clinical.patients AS p ON p.id = g.resource_id
         WHERE g.role_name = session_user
           AND g.rar_type = 'patient_record'
           AND g.action = 'read'
           AND g.resource_id = p_patient_id
           AND g.expires_at > now()
           AND (NOT p.sensitive OR g.stepped_up)
    )
$$;

-- care_team_roster|read on Practitioner/<sub>: the patients on that clinician's
-- care team, and only when the grant names the clinician it was issued to.
CREATE OR REPLACE FUNCTION access.on_roster(p_patient_id text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1
          FROM access.grants AS g
          JOIN clinical.care_team_members AS m ON m.clinician_sub = g.resource_id
         WHERE g.role_name = session_user
           AND g.rar_type = 'care_team_roster'
           AND g.action = 'read'
           AND g.resource_id = g.clinician_sub
           AND g.expires_at > now()
           AND m.patient_id = p_patient_id
    )
$$;

ALTER FUNCTION access.can_read_patient(text) OWNER TO trustloop_lease_engine;
ALTER FUNCTION access.on_roster(text) OWNER TO trustloop_lease_engine;
REVOKE ALL ON FUNCTION access.can_read_patient(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION access.on_roster(text) FROM PUBLIC;

-- The whole FHIR Patient (names, addresses, identifiers) only with a patient_record
-- grant: readers have no column privilege on patients.resource, so a roster grant
-- sees the roster columns and nothing else.
CREATE OR REPLACE FUNCTION clinical.patient_resource(p_patient_id text)
RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.resource FROM clinical.patients AS p WHERE p.id = p_patient_id
$$;
ALTER FUNCTION clinical.patient_resource(text) OWNER TO clinical_owner;
REVOKE ALL ON FUNCTION clinical.patient_resource(text) FROM PUBLIC;
