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

ALTER TABLE clinical.patients FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.practitioners FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.care_team_members FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.encounters FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.conditions FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.observations FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.medication_requests FORCE ROW LEVEL SECURITY;
ALTER TABLE clinical.notes FORCE ROW LEVEL SECURITY;

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
