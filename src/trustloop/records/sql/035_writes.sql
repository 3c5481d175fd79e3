-- Writes (docs/contracts.md, "Writes"): the database, not the MCP server, decides
-- who wrote what. A write grant (action write_note or update_medication) allows
-- one write, on its one patient, before it expires, on a sensitive patient only
-- when the grant was made from a stepped-up OBO, and only the exact change whose
-- SHA-256 the clinician consented to (access.grants.change_sha256). The author
-- and the OBO jti are copied from the grant row, whatever the client sent.
--
-- Every refusal is SQLSTATE 42501 (insufficient_privilege) with one fixed
-- message: the MCP server reports "access_denied: the database refused the
-- write" and learns nothing about other patients' rows.

-- The canonical change texts, as trustloop.records.changes writes them. The
-- dosage and note text are hashed exactly as they are stored.
CREATE OR REPLACE FUNCTION clinical.change_digest(p_change text)
RETURNS text
LANGUAGE sql IMMUTABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT encode(sha256(convert_to(p_change, 'UTF8')), 'hex')
$$;

CREATE OR REPLACE FUNCTION clinical.medication_change_text(
    p_medication_request_id text, p_status text, p_dosage text
)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'MedicationRequest/' || p_medication_request_id
        || E'\nstatus=' || coalesce(p_status, '')
        || E'\ndosage=' || coalesce(p_dosage, '')
$$;

ALTER FUNCTION clinical.change_digest(text) OWNER TO clinical_owner;
ALTER FUNCTION clinical.medication_change_text(text, text, text)
    OWNER TO clinical_owner;

-- May the session's grant write (p_action) on this patient now? For policies:
-- one patient, not expired, a digest named, sensitive patients stepped up.
CREATE OR REPLACE FUNCTION access.can_write(p_action text, p_patient_id text)
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
           AND g.action = p_action
           AND g.resource_id = p_patient_id
           AND g.change_sha256 IS NOT NULL
           AND g.expires_at > now()
           AND (NOT p.sensitive OR g.stepped_up)
    )
$$;

-- A note writer reads back only the note its own grant wrote.
CREATE OR REPLACE FUNCTION access.wrote_note(p_obo_jti text)
RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (
        SELECT 1
          FROM access.grants AS g
         WHERE g.role_name = session_user
           AND g.action = 'write_note'
           AND g.jti = p_obo_jti
           AND g.expires_at > now()
    )
$$;

-- Claim the session's one write: the grant row, marked used, or a refusal.
-- Checks everything but the patient and the digest, which the caller knows.
CREATE OR REPLACE FUNCTION access.claim_write(p_action text)
RETURNS access.grants
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    claimed access.grants;
BEGIN
    UPDATE access.grants AS g
       SET used_at = now()
     WHERE g.role_name = session_user
       AND g.rar_type = 'patient_record'
       AND g.action = p_action
       AND g.change_sha256 IS NOT NULL
       AND g.used_at IS NULL
       AND g.expires_at > now()
       AND (g.stepped_up OR NOT EXISTS (
            SELECT 1 FROM clinical.patients AS p
             WHERE p.id = g.resource_id AND p.sensitive))
    RETURNING g.* INTO claimed;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the database refused the write'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN claimed;
END
$$;

-- BEFORE INSERT on clinical.notes: id, author, OBO jti and time come from the
-- database; the text must be the consented one. Superusers (demo set-up, tests'
-- fixtures) are not ephemeral roles and are left alone, as RLS leaves them.
CREATE OR REPLACE FUNCTION access.stamp_note()
RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g access.grants;
BEGIN
    IF (SELECT r.rolsuper FROM pg_roles AS r WHERE r.rolname = session_user) THEN
        RETURN NEW;
    END IF;
    g := access.claim_write('write_note');
    IF NEW.patient_id IS DISTINCT FROM g.resource_id
       OR clinical.change_digest(NEW.text) IS DISTINCT FROM g.change_sha256 THEN
        RAISE EXCEPTION 'the database refused the write'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.id := gen_random_uuid()::text;
    NEW.author_sub := g.clinician_sub;
    NEW.obo_jti := g.jti;
    NEW.created_at := now();
    RETURN NEW;
END
$$;

ALTER FUNCTION access.can_write(text, text) OWNER TO trustloop_lease_engine;
ALTER FUNCTION access.wrote_note(text) OWNER TO trustloop_lease_engine;
ALTER FUNCTION access.claim_write(text) OWNER TO trustloop_lease_engine;
ALTER FUNCTION access.stamp_note() OWNER TO trustloop_lease_engine;

DROP TRIGGER IF EXISTS notes_stamp ON clinical.notes;
CREATE TRIGGER notes_stamp BEFORE INSERT ON clinical.notes
    FOR EACH ROW EXECUTE FUNCTION access.stamp_note();

-- A medication change: one MedicationRequest of the granted patient, exactly the
-- consented change; the old resource goes to clinical.medication_changes. Runs
-- as clinical_owner, whose row-level security on these tables is the grant's
-- (040_policies.sql). Answers the new and previous resources, author and jti.
CREATE OR REPLACE FUNCTION clinical.change_medication(
    p_medication_request_id text, p_status text, p_dosage text
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text := nullif(p_status, '');
    v_dosage text := nullif(p_dosage, '');
    v_change_id text := gen_random_uuid()::text;
    g access.grants;
    v_patient text;
    v_old jsonb;
    v_new jsonb;
BEGIN
    IF v_status IS NULL AND v_dosage IS NULL THEN
        RAISE EXCEPTION 'a medication change needs a status or a dosage'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_status IS NOT NULL AND NOT v_status = ANY (ARRAY[
        'active', 'on-hold', 'cancelled', 'completed', 'entered-in-error',
        'stopped', 'draft', 'unknown'
    ]) THEN
        RAISE EXCEPTION 'not a MedicationRequest status'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    g := access.claim_write('update_medication');
    SELECT m.patient_id, m.resource INTO v_patient, v_old
      FROM clinical.medication_requests AS m
     WHERE m.id = p_medication_request_id
       FOR UPDATE;
    IF v_patient IS NULL
       OR v_patient IS DISTINCT FROM g.resource_id
       OR clinical.change_digest(clinical.medication_change_text(
            p_medication_request_id, v_status, v_dosage)) IS DISTINCT FROM
          g.change_sha256 THEN
        RAISE EXCEPTION 'the database refused the write'
            USING ERRCODE = 'insufficient_privilege';
    END IF;

    v_new := v_old;
    IF v_status IS NOT NULL THEN
        v_new := jsonb_set(v_new, '{status}', to_jsonb(v_status));
    END IF;
    IF v_dosage IS NOT NULL THEN
        IF jsonb_typeof(v_new -> 'dosageInstruction') = 'array'
           AND jsonb_array_length(v_new -> 'dosageInstruction') > 0 THEN
            v_new := jsonb_set(v_new, '{dosageInstruction,0,text}', to_jsonb(v_dosage));
        ELSE
            v_new := v_new || jsonb_build_object('dosageInstruction',
                jsonb_build_array(jsonb_build_object('text', v_dosage)));
        END IF;
    END IF;

    INSERT INTO clinical.medication_changes (id, medication_request_id, patient_id,
        previous, resource, changed_by, obo_jti, change_sha256)
    VALUES (v_change_id, p_medication_request_id, v_patient, v_old, v_new,
        g.clinician_sub, g.jti, g.change_sha256);
    UPDATE clinical.medication_requests AS m
       SET status = coalesce(v_status, m.status), resource = v_new
     WHERE m.id = p_medication_request_id;

    RETURN jsonb_build_object(
        'change_id', v_change_id,
        'medication_request', v_new,
        'previous', v_old,
        'changed_by', g.clinician_sub,
        'obo_jti', g.jti
    );
END
$$;
ALTER FUNCTION clinical.change_medication(text, text, text) OWNER TO clinical_owner;

REVOKE ALL ON FUNCTION clinical.change_digest(text),
    clinical.medication_change_text(text, text, text),
    clinical.change_medication(text, text, text),
    access.can_write(text, text), access.wrote_note(text),
    access.claim_write(text), access.stamp_note()
    FROM PUBLIC;
