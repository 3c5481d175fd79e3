-- Privileges, reset and granted again so that re-applying narrows as well as widens.

REVOKE ALL ON ALL TABLES IN SCHEMA clinical
    FROM PUBLIC, clinical_reader, trustloop_idp, trustloop_lease_engine;

GRANT USAGE ON SCHEMA clinical
    TO clinical_reader, trustloop_idp, trustloop_lease_engine;

-- Readers (ephemeral roles): every clinical table, rows filtered by the policies;
-- on patients only the roster columns (the full resource via patient_resource()).
GRANT SELECT ON clinical.encounters, clinical.conditions, clinical.observations,
    clinical.medication_requests, clinical.notes, clinical.practitioners
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
