-- 002_sql_api: start runs, send events and signals from SQL, inside the
-- caller's transaction (docs/sql-api.md).
--
--   start_run(workflow, input jsonb)  -> run id
--   send_event(name, data jsonb [, event_id uuid])
--                                     -> (event_id, run_id) per run started
--   send_signal(name, data jsonb)     -> the receiving run id, or NULL
--
-- Nothing here commits or notifies by itself: the rows commit with the
-- caller's transaction (a rollback leaves nothing), and the exec_queue
-- insert trigger's NOTIFY is delivered at commit, so a worker starts at once.
-- The *_msgpack functions take the payload already packed; the command line
-- and the C client call them, so every path inserts the same rows.
--
-- Objects are created unqualified (the migrator sets search_path); every
-- function pins it with SET search_path FROM CURRENT, so callers with any
-- search_path can call stepkit.start_run(...).
--
-- SQLSTATEs raised here: SK002 unknown workflow; 22023 invalid name; 22003 a
-- number JSON cannot carry as int64/float64; 54000 payload too large or too
-- deeply nested.

-- ---- jsonb -> msgpack ----------------------------------------------------
--
-- The same bytes as sk_json_to_msgpack (jansson + msgpack-c) produces for the
-- same JSON text, with two differences that jsonb itself causes:
--   - object keys come in jsonb's order (shorter keys first, then bytewise),
--     not in the order they were written;
--   - jsonb normalises numbers: 1e3 is stored as 1000 and arrives as an
--     integer (jansson reads any exponent as a real); 1.0 keeps its scale and
--     arrives as a real, as in jansson.  numeric has no -0.0.

-- A number: integer when jsonb's text has no '.', else float64.  Integers use
-- the smallest encoding, as msgpack_pack_int64 does: positive ones as fixint
-- or uint8/16/32/64, negative ones as negative fixint or int8/16/32/64.
CREATE FUNCTION mp_number(p jsonb) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path FROM CURRENT AS $$
DECLARE
    t text := p #>> '{}';
    n numeric;
    i bigint;
    shown text := CASE WHEN length(t) > 40 THEN left(t, 37) || '...' ELSE t END;
BEGIN
    n := t::numeric;
    IF t ~ '[.eE]' THEN
        IF abs(n) >= 1.7976931348623158079e308 THEN
            RAISE EXCEPTION 'number % is out of range for a float64', shown
                USING ERRCODE = '22003';
        END IF;
        -- Too close to zero for any float64: strtod (jansson) gives a signed zero.
        IF n <> 0 AND abs(n) < 2.4703282292062327209e-324 THEN
            RETURN '\xcb'::bytea || float8send(CASE WHEN n < 0 THEN '-0'::float8 ELSE 0 END);
        END IF;
        RETURN '\xcb'::bytea || float8send(t::float8);
    END IF;
    IF n < -9223372036854775808 OR n > 9223372036854775807 THEN
        RAISE EXCEPTION 'integer % is out of range: JSON integers must fit in int64', shown
            USING ERRCODE = '22003',
                  HINT = 'Send large numbers as strings (jsonb writes 1e20 as an integer).';
    END IF;
    i := n::bigint;
    IF i >= 0 THEN
        IF i < 128 THEN
            RETURN substring(int8send(i) FROM 8 FOR 1);
        ELSIF i < 256 THEN
            RETURN '\xcc'::bytea || substring(int8send(i) FROM 8 FOR 1);
        ELSIF i < 65536 THEN
            RETURN '\xcd'::bytea || substring(int8send(i) FROM 7 FOR 2);
        ELSIF i < 4294967296 THEN
            RETURN '\xce'::bytea || substring(int8send(i) FROM 5 FOR 4);
        END IF;
        RETURN '\xcf'::bytea || int8send(i);
    END IF;
    IF i >= -32 THEN
        RETURN substring(int8send(i) FROM 8 FOR 1);
    ELSIF i >= -128 THEN
        RETURN '\xd0'::bytea || substring(int8send(i) FROM 8 FOR 1);
    ELSIF i >= -32768 THEN
        RETURN '\xd1'::bytea || substring(int8send(i) FROM 7 FOR 2);
    ELSIF i >= -2147483648 THEN
        RETURN '\xd2'::bytea || substring(int8send(i) FROM 5 FOR 4);
    END IF;
    RETURN '\xd3'::bytea || int8send(i);
END
$$;

-- Array and map headers: fix, 16 and 32 bit counts.
CREATE FUNCTION mp_header(p_fix int, p_16 bytea, p_32 bytea, n int) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT SET search_path FROM CURRENT AS $$
    SELECT CASE
        WHEN n < 16 THEN substring(int4send(p_fix + n) FROM 4 FOR 1)
        WHEN n < 65536 THEN p_16 || substring(int4send(n) FROM 3 FOR 2)
        ELSE p_32 || int4send(n) END;
$$;

-- One value at nesting depth p_depth (containers deeper than 32 levels are
-- refused, as sk_json_to_msgpack and the workers' msgpack check do).
CREATE FUNCTION mp_jsonb(p jsonb, p_depth int) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path FROM CURRENT AS $$
DECLARE
    v_type text := jsonb_typeof(p);
    v_out bytea;
BEGIN
    CASE v_type
    WHEN 'null' THEN
        RETURN '\xc0'::bytea;
    WHEN 'boolean' THEN
        RETURN CASE WHEN p = 'true'::jsonb THEN '\xc3'::bytea ELSE '\xc2'::bytea END;
    WHEN 'number' THEN
        RETURN mp_number(p);
    WHEN 'string' THEN
        RETURN mp_str(p #>> '{}');
    ELSE
        NULL;
    END CASE;
    IF p_depth >= 32 THEN
        RAISE EXCEPTION 'JSON nested deeper than 32 levels' USING ERRCODE = '54000';
    END IF;
    IF v_type = 'array' THEN
        SELECT mp_header(144, '\xdc', '\xdd', count(*)::int)
               || coalesce(string_agg(mp_jsonb(e.value, p_depth + 1), ''::bytea
                                      ORDER BY e.ord), ''::bytea)
          INTO v_out
          FROM jsonb_array_elements(p) WITH ORDINALITY AS e(value, ord);
    ELSE
        SELECT mp_header(128, '\xde', '\xdf', count(*)::int)
               || coalesce(string_agg(mp_str(e.key) || mp_jsonb(e.value, p_depth + 1), ''::bytea
                                      ORDER BY e.ord), ''::bytea)
          INTO v_out
          FROM jsonb_each(p) WITH ORDINALITY AS e(key, value, ord);
    END IF;
    RETURN v_out;
END
$$;

-- Public: the msgpack bytes of a jsonb value (SQL NULL gives NULL).
CREATE FUNCTION to_msgpack(p jsonb) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT SET search_path FROM CURRENT AS $$
    SELECT mp_jsonb(p, 0);
$$;

-- A payload: SQL NULL is JSON null; at most 16 MiB packed (SK_PAYLOAD_MAX).
CREATE FUNCTION mp_payload(p jsonb, p_what text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
DECLARE
    v bytea := coalesce(to_msgpack(p), '\xc0'::bytea);
BEGIN
    IF octet_length(v) > 16777216 THEN
        RAISE EXCEPTION '% of % bytes (msgpack) exceeds the limit of 16777216 bytes',
            p_what, octet_length(v) USING ERRCODE = '54000';
    END IF;
    RETURN v;
END
$$;

-- A name is required; event names are 1..200 characters without line
-- breaks, as workflows register them (a longer one could never match).
CREATE FUNCTION check_name(p_kind text, p_name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path FROM CURRENT AS $$
BEGIN
    IF p_name IS NULL OR p_name = '' THEN
        RAISE EXCEPTION '% name is required (got %)', p_kind,
            CASE WHEN p_name IS NULL THEN 'NULL' ELSE 'an empty string' END
            USING ERRCODE = '22023';
    END IF;
    IF p_kind = 'an event' AND (length(p_name) > 200 OR p_name ~ '[\n\r]') THEN
        RAISE EXCEPTION '% name must be 1..200 characters without line breaks', p_kind
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- ---- runs ----------------------------------------------------------------

-- Start a run of a registered workflow with msgpack input (NULL: nil):
-- the run and its queue item, in the caller's transaction.  p_notify_end:
-- somebody waits for the end (NOTIFY <schema>.done then).
CREATE FUNCTION start_run_msgpack(p_workflow text, p_data bytea, p_notify_end boolean DEFAULT false)
RETURNS TABLE (run_id uuid, event_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_run uuid := gen_random_uuid();
    v_event uuid := gen_random_uuid();
BEGIN
    IF p_workflow IS NULL OR p_workflow = '' THEN
        RAISE EXCEPTION 'a workflow id is required' USING ERRCODE = '22023';
    END IF;
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

CREATE FUNCTION start_run(p_workflow text, p_input jsonb DEFAULT 'null') RETURNS uuid
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT s.run_id FROM start_run_msgpack(p_workflow, mp_payload(p_input, 'input'), false) s;
$$;

-- ---- events ----------------------------------------------------------------

-- Send an event: it goes through event_queue and, in the same transaction,
-- starts one run of every workflow whose events include p_name
-- (input.type "event", input.name p_name, input.id the event id); the
-- processed event leaves the queue.  runs_event_workflow makes a repeated
-- event id start nothing new, so a send with an explicit p_event_id is
-- idempotent.  One row per run started; a single row with run_id NULL when
-- none was (nobody listens, or the id was sent before).
CREATE FUNCTION send_event_msgpack(p_name text, p_data bytea, p_event_id uuid DEFAULT NULL)
RETURNS TABLE (event_id uuid, run_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_event uuid := coalesce(p_event_id, gen_random_uuid());
    v_data bytea := coalesce(p_data, '\xc0'::bytea);
    v_runs uuid[];
BEGIN
    PERFORM check_name('an event', p_name);
    INSERT INTO event_queue (event_id, name, data) VALUES (v_event, p_name, v_data)
    ON CONFLICT DO NOTHING;
    WITH r AS (
        INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data)
        SELECT gen_random_uuid(), w.workflow_id, v_event, 'event', p_name, v_data
          FROM workflows w
         WHERE p_name = ANY (w.events)
         ORDER BY w.workflow_id
        ON CONFLICT (event_id, workflow_id) DO NOTHING
        RETURNING run_id, workflow_id),
    q AS (INSERT INTO exec_queue (run_id, workflow_id) SELECT run_id, workflow_id FROM r)
    SELECT array_agg(r.run_id ORDER BY r.workflow_id) INTO v_runs FROM r;
    DELETE FROM event_queue WHERE event_id = v_event;
    IF v_runs IS NULL THEN
        RETURN QUERY SELECT v_event, NULL::uuid;
    ELSE
        RETURN QUERY SELECT v_event, u.id FROM unnest(v_runs) WITH ORDINALITY AS u(id, ord)
                      ORDER BY u.ord;
    END IF;
END
$$;

CREATE FUNCTION send_event(p_name text, p_data jsonb DEFAULT 'null', p_event_id uuid DEFAULT NULL)
RETURNS TABLE (event_id uuid, run_id uuid)
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT * FROM send_event_msgpack(p_name, mp_payload(p_data, 'event data'), p_event_id);
$$;

-- ---- signals ---------------------------------------------------------------

-- The oldest run waiting on p_name receives {data, signal}; its id is
-- returned, or NULL when nobody waits (the signal is dropped).
CREATE FUNCTION send_signal(p_name text, p_data jsonb DEFAULT 'null') RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    PERFORM check_name('a signal', p_name);
    RETURN deliver_signal(p_name, mp_payload(p_data, 'signal data'));
END
$$;


INSERT INTO schema_migrations (version, name) VALUES (2, '002_sql_api');
