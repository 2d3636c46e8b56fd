-- 005_limits: names are checked before anything is written.
--
-- Workflow ids, event and signal names land in text columns, several of
-- them in btree indexes (workflows, runs_event_workflow, waiting_signals),
-- whose entries cannot exceed about 2.7 kB: a longer name failed at the
-- insert with "index row size ... exceeds maximum", or never matched.  The
-- rule is the one the authoring API, the C client and the command line
-- apply (SK_NAME_LEN_MAX in stepkit.h, docs/steps.md): 1..255 bytes;
-- workflow ids and event names without line breaks.  Errors: SQLSTATE 22023.

-- p_kind: 'a workflow' (id), 'an event' or 'a signal' (name).
CREATE OR REPLACE FUNCTION check_name(p_kind text, p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    v_what text := p_kind || CASE WHEN p_kind = 'a workflow' THEN ' id' ELSE ' name' END;
BEGIN
    IF p_name IS NULL OR p_name = '' THEN
        RAISE EXCEPTION '% is required (got %)', v_what,
            CASE WHEN p_name IS NULL THEN 'NULL' ELSE 'an empty string' END
            USING ERRCODE = '22023';
    END IF;
    IF octet_length(p_name) > 255 THEN
        RAISE EXCEPTION '% is % bytes long: the limit is 255 bytes', v_what, octet_length(p_name)
            USING ERRCODE = '22023',
                  HINT = 'Workflow ids, event and signal names and step ids are 1..255 bytes.';
    END IF;
    IF p_kind <> 'a signal' AND p_name ~ '[\n\r]' THEN
        RAISE EXCEPTION '% must be 1..255 bytes without line breaks', v_what
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- As in 002_sql_api, with the workflow id checked first.
CREATE OR REPLACE FUNCTION start_run_msgpack(p_workflow text, p_data bytea,
                                             p_notify_end boolean DEFAULT false)
RETURNS TABLE (run_id uuid, event_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_run uuid := gen_random_uuid();
    v_event uuid := gen_random_uuid();
BEGIN
    PERFORM check_name('a workflow', p_workflow);
    INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,
                      notify_end)
    SELECT v_run, w.workflow_id, v_event, 'invoke', w.workflow_id,
           coalesce(p_data, '\xc0'::bytea), coalesce(p_notify_end, false)
      FROM workflows w WHERE w.workflow_id = p_workflow;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown workflow ''%'': no master has registered it in schema "%"',
            p_workflow, current_schema()
            USING ERRCODE = 'SK002',
                  HINT = 'Start stepkit-master with the library that defines it.';
    END IF;
    INSERT INTO exec_queue (run_id, workflow_id) VALUES (v_run, p_workflow);
    RETURN QUERY SELECT v_run, v_event;
END
$$;

INSERT INTO schema_migrations (version, name) VALUES (5, '005_limits');
