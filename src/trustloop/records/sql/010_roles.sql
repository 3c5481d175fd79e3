-- Roles (docs/contracts.md, "PostgreSQL roles and schemas"). Idempotent.
-- No admin role has a password: they log in over the unix socket with peer
-- authentication only. Ephemeral roles are created by the lease engine and only
-- ever get membership in the NOLOGIN group roles: clinical_reader (reads),
-- clinical_note_writer (one note), clinical_medication_writer (one medication
-- change through clinical.change_medication). Writers are not readers.

DO $$
DECLARE
    wanted text[] := ARRAY[
        'clinical_owner', 'clinical_reader', 'clinical_note_writer',
        'clinical_medication_writer', 'trustloop_lease_engine', 'trustloop_idp'
    ];
    name text;
BEGIN
    FOREACH name IN ARRAY wanted LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = name) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', name);
        END IF;
    END LOOP;
END
$$;

ALTER ROLE clinical_owner NOLOGIN NOCREATEROLE NOCREATEDB;
ALTER ROLE clinical_reader NOLOGIN NOCREATEROLE NOCREATEDB;
ALTER ROLE clinical_note_writer NOLOGIN NOCREATEROLE NOCREATEDB;
ALTER ROLE clinical_medication_writer NOLOGIN NOCREATEROLE NOCREATEDB;
ALTER ROLE trustloop_lease_engine LOGIN CREATEROLE NOCREATEDB PASSWORD NULL;
ALTER ROLE trustloop_idp LOGIN NOCREATEROLE NOCREATEDB PASSWORD NULL;
-- The lease engine ends ephemeral roles' sessions: it signals them
-- (pg_signal_backend) and must see whether a statement is still running
-- (pg_read_all_stats: pg_stat_activity.state is NULL for other users' sessions).
GRANT pg_signal_backend, pg_read_all_stats TO trustloop_lease_engine;

-- Only the stack's roles may connect; nobody gets TEMP.
DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format(
        'GRANT CONNECT ON DATABASE %I TO clinical_reader, clinical_note_writer, '
        'clinical_medication_writer, trustloop_lease_engine, trustloop_idp',
        current_database()
    );
END
$$;
