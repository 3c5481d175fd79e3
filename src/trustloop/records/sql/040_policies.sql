-- Row-level security on every clinical table, enabled and forced (the owner too).
-- Superusers (the importer, the demo set-up) bypass it; nobody else does.

ALTER TABLE clinical.patients ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.practitioners ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.care_team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.encounters ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.conditions ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.observations ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.medication_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE clinical.medication_changes ENABLE ROW LEVEL SECURITY;

ALTER TABLE clinical.patients FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.practitioners FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.care_team_members FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.encounters FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.conditions FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.observations FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.medication_requests FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.notes FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.medication_changes FORCE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS patients_reader ON clinical.patients;
CREATE POLICY patients_reader ON clinical.patients FOR SELECT TO clinical_reader
    USING (access.can_read_patient(id) OR access.on_roster(id));

-- clinical.patient_resource() runs as the owner: same rule as a chart read.
DROP POLICY IF EXISTS patients_chart ON clinical.patients;
CREATE POLICY patients_chart ON clinical.patients FOR SELECT TO clinical_owner
    USING (access.can_read_patient(id));

DROP POLICY IF EXISTS patients_policy_readers ON clinical.patients;
CREATE POLICY patients_policy_readers ON clinical.patients FOR SELECT
    TO trustloop_idp, trustloop_lease_engine USING (true);

DROP POLICY IF EXISTS care_team_policy_readers ON clinical.care_team_members;
CREATE POLICY care_team_policy_readers ON clinical.care_team_members FOR SELECT
    TO trustloop_idp, trustloop_lease_engine USING (true);

DROP POLICY IF EXISTS encounters_reader ON clinical.encounters;
CREATE POLICY encounters_reader ON clinical.encounters FOR SELECT TO clinical_reader
    USING (access.can_read_patient(patient_id));

DROP POLICY IF EXISTS conditions_reader ON clinical.conditions;
CREATE POLICY conditions_reader ON clinical.conditions FOR SELECT TO clinical_reader
    USING (access.can_read_patient(patient_id));

DROP POLICY IF EXISTS observations_reader ON clinical.observations;
CREATE POLICY observations_reader ON clinical.observations FOR SELECT
    TO clinical_reader USING (access.can_read_patient(patient_id));

DROP POLICY IF EXISTS medication_requests_reader ON clinical.medication_requests;
CREATE POLICY medication_requests_reader ON clinical.medication_requests FOR SELECT
    TO clinical_reader USING (access.can_read_patient(patient_id));

DROP POLICY IF EXISTS notes_reader ON clinical.notes;
CREATE POLICY notes_reader ON clinical.notes FOR SELECT TO clinical_reader
    USING (access.can_read_patient(patient_id));

DROP POLICY IF EXISTS medication_changes_reader ON clinical.medication_changes;
CREATE POLICY medication_changes_reader ON clinical.medication_changes FOR SELECT
    TO clinical_reader USING (access.can_read_patient(patient_id));

-- Writes (035_writes.sql). A note writer inserts on its one patient (the trigger
-- claims the grant, checks the digest and stamps author and jti; this check runs
-- after it) and reads back only what its own grant wrote.
DROP POLICY IF EXISTS notes_writer ON clinical.notes;
CREATE POLICY notes_writer ON clinical.notes FOR INSERT TO clinical_note_writer
    WITH CHECK (access.can_write('write_note', patient_id));

DROP POLICY IF EXISTS notes_written ON clinical.notes;
CREATE POLICY notes_written ON clinical.notes FOR SELECT TO clinical_note_writer
    USING (access.wrote_note(obo_jti));

-- clinical.change_medication() runs as the owner: it finds, locks and changes
-- only the granted patient's medication requests, and records history for them.
DROP POLICY IF EXISTS medication_requests_change ON clinical.medication_requests;
CREATE POLICY medication_requests_change ON clinical.medication_requests FOR SELECT
    TO clinical_owner USING (access.can_write('update_medication', patient_id));

DROP POLICY IF EXISTS medication_requests_update ON clinical.medication_requests;
CREATE POLICY medication_requests_update ON clinical.medication_requests FOR UPDATE
    TO clinical_owner
    USING (access.can_write('update_medication', patient_id))
    WITH CHECK (access.can_write('update_medication', patient_id));

DROP POLICY IF EXISTS medication_changes_insert ON clinical.medication_changes;
CREATE POLICY medication_changes_insert ON clinical.medication_changes FOR INSERT
    TO clinical_owner
    WITH CHECK (access.can_write('update_medication', patient_id));
