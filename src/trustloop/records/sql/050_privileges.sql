-- Privileges, reset and granted again so that re-applying narrows as well as widens.

REVOKE ALL ON ALL TABLES IN SCHEMA clinical
    FROM PUBLIC, clinical_reader, clinical_note_writer, clinical_medication_writer,
    trustloop_idp, trustloop_lease_engine;

GRANT USAGE ON SCHEMA clinical
    TO clinical_reader, clinical_note_writer, clinical_medication_writer,
    trustloop_idp, trustloop_lease_engine;

-- Readers (ephemeral roles): every clinical table, rows filtered by the policies;
-- on patients only the roster columns (the full resource via patient_resource()).
GRANT SELECT ON clinical.encounters, clinical.conditions, clinical.observations,
    clinical.medication_requests, clinical.notes, clinical.practitioners,
    clinical.medication_changes
    TO clinical_reader;
GRANT SELECT (id, name, birth_date, gender, sensitive) ON clinical.patients
    TO clinical_reader;
GRANT EXECUTE ON FUNCTION clinical.patient_resource(text) TO clinical_reader;
GRANT EXECUTE ON FUNCTION access.can_read_patient(text), access.on_roster(text)
    TO clinical_reader, clinical_owner;

-- What the IdP's policy reads, and what the grant functions look up.
GRANT SELECT ON clinical.care_team_members TO trustloop_idp, trustloop_lease_engine;
GRANT SELECT (id, sensitive) ON clinical.patients
    TO trustloop_idp, trustloop_lease_engine;

-- Writers (ephemeral roles of write grants) are not readers. A note writer may
-- insert a note (author_sub and obo_jti may be sent: the trigger overwrites them)
-- and read back its own; a medication writer may only call change_medication().
GRANT INSERT (patient_id, author_sub, obo_jti, text) ON clinical.notes
    TO clinical_note_writer;
GRANT SELECT ON clinical.notes TO clinical_note_writer;
GRANT EXECUTE ON FUNCTION access.can_write(text, text), access.wrote_note(text)
    TO clinical_note_writer, clinical_owner;
GRANT EXECUTE ON FUNCTION clinical.change_medication(text, text, text)
    TO clinical_medication_writer;

-- What the write functions call while running as their owners.
GRANT USAGE ON SCHEMA access TO clinical_owner;
GRANT EXECUTE ON FUNCTION access.claim_write(text) TO clinical_owner;
GRANT EXECUTE ON FUNCTION clinical.change_digest(text) TO trustloop_lease_engine;
