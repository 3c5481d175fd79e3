-- Schema clinical: the imported FHIR data, owned by the NOLOGIN clinical_owner.
-- Every table keeps the FHIR resource as imported in `resource`; the other columns
-- exist for the per-patient queries and the policies.

CREATE SCHEMA IF NOT EXISTS clinical AUTHORIZATION clinical_owner;
ALTER SCHEMA clinical OWNER TO clinical_owner;
REVOKE ALL ON SCHEMA clinical FROM PUBLIC;

CREATE TABLE IF NOT EXISTS clinical.patients (
    id          text PRIMARY KEY,
    family      text,
    given       text,
    name        text NOT NULL,
    birth_date  date,
    gender      text,
    sensitive   boolean NOT NULL DEFAULT false,
    resource    jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS clinical.practitioners (
    id          text PRIMARY KEY,
    name        text,
    resource    jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS clinical.care_team_members (
    clinician_sub text NOT NULL,
    patient_id    text NOT NULL REFERENCES clinical.patients (id) ON DELETE CASCADE,
    role          text NOT NULL,
    PRIMARY KEY (clinician_sub, patient_id)
);

CREATE TABLE IF NOT EXISTS clinical.encounters (
    id            text PRIMARY KEY,
    patient_id    text NOT NULL REFERENCES clinical.patients (id) ON DELETE CASCADE,
    status        text,
    class_code    text,
    type_text     text,
    period_start  timestamptz,
    period_end    timestamptz,
    resource      jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS clinical.conditions (
    id              text PRIMARY KEY,
    patient_id      text NOT NULL REFERENCES clinical.patients (id) ON DELETE CASCADE,
    code            text,
    display         text,
    clinical_status text,
    onset           timestamptz,
    abatement       timestamptz,
    resource        jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS clinical.observations (
    id          text PRIMARY KEY,
    patient_id  text NOT NULL REFERENCES clinical.patients (id) ON DELETE CASCADE,
    category    text,
    code        text,
    display     text,
    effective   timestamptz,
    resource    jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS clinical.medication_requests (
    id           text PRIMARY KEY,
    patient_id   text NOT NULL REFERENCES clinical.patients (id) ON DELETE CASCADE,
    status       text,
    code         text,
    display      text,
    authored_on  timestamptz,
    resource     jsonb NOT NULL
);

CREATE TABLE IF NOT EXISTS clinical.notes (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    patient_id  text NOT NULL REFERENCES clinical.patients (id) ON DELETE CASCADE,
    author_sub  text NOT NULL,
    obo_jti     text NOT NULL,
    text        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Medication changes: history, never overwritten. Each row keeps the resource
-- before and after one change, who made it and under which OBO token (both taken
-- from the grant row by clinical.change_medication, never from the caller).
CREATE TABLE IF NOT EXISTS clinical.medication_changes (
    id                     text PRIMARY KEY,
    medication_request_id  text NOT NULL
        REFERENCES clinical.medication_requests (id) ON DELETE CASCADE,
    patient_id             text NOT NULL
        REFERENCES clinical.patients (id) ON DELETE CASCADE,
    previous               jsonb NOT NULL,
    resource               jsonb NOT NULL,
    changed_by             text NOT NULL,
    obo_jti                text NOT NULL,
    change_sha256          text NOT NULL,
    changed_at             timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS care_team_members_patient_idx
    ON clinical.care_team_members (patient_id);
CREATE INDEX IF NOT EXISTS encounters_patient_idx
    ON clinical.encounters (patient_id, period_start DESC);
CREATE INDEX IF NOT EXISTS conditions_patient_idx
    ON clinical.conditions (patient_id, onset DESC);
CREATE INDEX IF NOT EXISTS observations_patient_code_idx
    ON clinical.observations (patient_id, code, effective DESC);
CREATE INDEX IF NOT EXISTS medication_requests_patient_idx
    ON clinical.medication_requests (patient_id, authored_on DESC);
CREATE INDEX IF NOT EXISTS notes_patient_idx
    ON clinical.notes (patient_id, created_at DESC);
CREATE INDEX IF NOT EXISTS medication_changes_request_idx
    ON clinical.medication_changes (medication_request_id, changed_at DESC);

ALTER TABLE clinical.patients OWNER TO clinical_owner;
ALTER TABLE clinical.practitioners OWNER TO clinical_owner;
ALTER TABLE clinical.care_team_members OWNER TO clinical_owner;
ALTER TABLE clinical.encounters OWNER TO clinical_owner;
ALTER TABLE clinical.conditions OWNER TO clinical_owner;
ALTER TABLE clinical.observations OWNER TO clinical_owner;
ALTER TABLE clinical.medication_requests OWNER TO clinical_owner;
ALTER TABLE clinical.notes OWNER TO clinical_owner;
ALTER TABLE clinical.medication_changes OWNER TO clinical_owner;
