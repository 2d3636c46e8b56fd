-- 010_flow: flow control.  Concurrency limits per workflow and per key,
-- rate limits on starts, priorities, debounce and singleton starts.
-- docs/flow-control.md has the semantics and why they are built so.
--
-- Free when unused: the queue gets three nullable columns and a partial
-- index that holds no row until a run is parked; the claim reads two more
-- columns of the row it updates anyway.  The two triggers that do the
-- work (on a queue insert, on a run's end) exist only once some workflow
-- of the schema has flow control (flow_enable below): a schema without it
-- pays no trigger call.

-- ---- configuration ----------------------------------------------------------
--
-- Keys are read from the run's input (input.data) by paths: "customer" or
-- "customer.id"; several paths separated by commas ("region,customer")
-- make a key of their values joined by '/'.  A missing path counts as ''.
ALTER TABLE workflows
    ADD COLUMN IF NOT EXISTS concurrency_limit int CHECK (concurrency_limit BETWEEN 1 AND 1000000),
    ADD COLUMN IF NOT EXISTS concurrency_key text, -- NULL: one limit for the whole workflow
    ADD COLUMN IF NOT EXISTS rate_limit int CHECK (rate_limit BETWEEN 1 AND 10000),
    ADD COLUMN IF NOT EXISTS rate_period_ms int CHECK (rate_period_ms BETWEEN 1 AND 86400000),
    ADD COLUMN IF NOT EXISTS rate_key text,        -- NULL: one rate for the whole workflow
    ADD COLUMN IF NOT EXISTS priority int NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 86400);

-- The queue: what an item still has to pass before it runs.
--   flow_key   the run's concurrency key, until it holds a slot;
--   rate_key   the run's rate key, until it is admitted by the rate;
--   rank_at    where the item ranks among ready items (created_at minus
--              its priority in seconds); a parked item returns there;
--   flow_parked  waiting for a slot of its key (visible_at infinity).
ALTER TABLE exec_queue
    ADD COLUMN IF NOT EXISTS flow_key text,
    ADD COLUMN IF NOT EXISTS rate_key text,
    ADD COLUMN IF NOT EXISTS rank_at timestamptz,
    ADD COLUMN IF NOT EXISTS flow_parked boolean NOT NULL DEFAULT false;

-- A freed slot wakes the best parked run of its key.
CREATE INDEX IF NOT EXISTS exec_queue_parked ON exec_queue (workflow_id, flow_key, rank_at, item_id)
    WHERE flow_parked;

-- Slots in use per (workflow, key); the row is the lock every claim and
-- every end of the key takes, so the count holds across masters.
CREATE TABLE IF NOT EXISTS flow_slots (
    workflow_id text NOT NULL,
    key         text NOT NULL,
    in_flight   int NOT NULL DEFAULT 0 CHECK (in_flight >= 0),
    PRIMARY KEY (workflow_id, key)
);

-- The runs holding a slot (from their first claim to their end).
CREATE TABLE IF NOT EXISTS flow_holders (
    run_id      uuid PRIMARY KEY,
    workflow_id text NOT NULL,
    key         text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);

-- Sliding-window log of admissions per (workflow, key): the last
-- rate_limit admission times (Unix ms) in a ring; a new one is admitted
-- when the oldest of them is at least a period old.
CREATE TABLE IF NOT EXISTS flow_rates (
    workflow_id text NOT NULL,
    key         text NOT NULL,
    hits        bigint[] NOT NULL DEFAULT '{}',
    next        int NOT NULL DEFAULT 1,
    PRIMARY KEY (workflow_id, key)
);

-- Debounce and singleton starts: the run a key stands for.
CREATE TABLE IF NOT EXISTS flow_start_keys (
    workflow_id text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('debounce', 'singleton')),
    key         text NOT NULL,
    run_id      uuid NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, mode, key)
);

-- ---- keys from msgpack input ------------------------------------------------

-- Big-endian unsigned integer of n bytes at offset p.
CREATE OR REPLACE FUNCTION mp_uint(b bytea, p int, n int) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    v numeric := 0;
BEGIN
    FOR i IN 0 .. n - 1 LOOP
        v := v * 256 + get_byte(b, p + i);
    END LOOP;
    RETURN v;
END
$$;

-- Offset just past the msgpack value starting at p.
CREATE OR REPLACE FUNCTION mp_skip(b bytea, p int) RETURNS int
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    n numeric := 1; -- values still to skip
    c int;
BEGIN
    WHILE n > 0 LOOP
        n := n - 1;
        c := get_byte(b, p);
        p := p + 1;
        IF c <= 127 OR c >= 224 OR c IN (192, 194, 195) THEN
            NULL;
        ELSIF c BETWEEN 128 AND 143 THEN n := n + 2 * (c - 128);
        ELSIF c BETWEEN 144 AND 159 THEN n := n + (c - 144);
        ELSIF c BETWEEN 160 AND 191 THEN p := p + (c - 160);
        ELSIF c IN (196, 217) THEN p := p + 1 + get_byte(b, p);
        ELSIF c IN (197, 218) THEN p := p + 2 + mp_uint(b, p, 2);
        ELSIF c IN (198, 219) THEN p := p + 4 + mp_uint(b, p, 4);
        ELSIF c = 199 THEN p := p + 2 + get_byte(b, p);
        ELSIF c = 200 THEN p := p + 3 + mp_uint(b, p, 2);
        ELSIF c = 201 THEN p := p + 5 + mp_uint(b, p, 4);
        ELSIF c IN (204, 208) THEN p := p + 1;
        ELSIF c IN (205, 209) THEN p := p + 2;
        ELSIF c IN (202, 206, 210) THEN p := p + 4;
        ELSIF c IN (203, 207, 211) THEN p := p + 8;
        ELSIF c BETWEEN 212 AND 216 THEN p := p + 1 + (1 << (c - 212));
        ELSIF c = 220 THEN n := n + mp_uint(b, p, 2); p := p + 2;
        ELSIF c = 221 THEN n := n + mp_uint(b, p, 4); p := p + 4;
        ELSIF c = 222 THEN n := n + 2 * mp_uint(b, p, 2); p := p + 2;
        ELSIF c = 223 THEN n := n + 2 * mp_uint(b, p, 4); p := p + 4;
        ELSE
            RAISE EXCEPTION 'invalid msgpack byte % at %', c, p - 1;
        END IF;
    END LOOP;
    RETURN p;
END
$$;

-- The value at a path (text[] of map keys) of a msgpack document, as text:
-- a string as is, an integer in decimal, true/false, nil and a missing
-- path as NULL, anything else as the hex of its msgpack bytes.
CREATE OR REPLACE FUNCTION mp_path(b bytea, path text[]) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
    p int := 0;
    c int;
    m numeric;
    klen int;
    kpos int;
    found boolean;
    e int;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(path), 0) LOOP
        c := get_byte(b, p);
        IF c BETWEEN 128 AND 143 THEN m := c - 128; p := p + 1;
        ELSIF c = 222 THEN m := mp_uint(b, p + 1, 2); p := p + 3;
        ELSIF c = 223 THEN m := mp_uint(b, p + 1, 4); p := p + 5;
        ELSE RETURN NULL;
        END IF;
        found := false;
        FOR j IN 1 .. m LOOP
            c := get_byte(b, p);
            klen := NULL;
            IF c BETWEEN 160 AND 191 THEN klen := c - 160; kpos := p + 1;
            ELSIF c = 217 THEN klen := get_byte(b, p + 1); kpos := p + 2;
            ELSIF c = 218 THEN klen := mp_uint(b, p + 1, 2); kpos := p + 3;
            END IF;
            IF klen IS NOT NULL
               AND substring(b FROM kpos + 1 FOR klen) = convert_to(path[i], 'UTF8') THEN
                p := kpos + klen;
                found := true;
                EXIT;
            END IF;
            p := mp_skip(b, mp_skip(b, p));
        END LOOP;
        IF NOT found THEN
            RETURN NULL;
        END IF;
    END LOOP;
    c := get_byte(b, p);
    e := mp_skip(b, p);
    RETURN CASE
        WHEN c <= 127 THEN c::text
        WHEN c >= 224 THEN (c - 256)::text
        WHEN c = 192 THEN NULL
        WHEN c = 194 THEN 'false'
        WHEN c = 195 THEN 'true'
        WHEN c BETWEEN 160 AND 191 THEN convert_from(substring(b FROM p + 2 FOR c - 160), 'UTF8')
        WHEN c = 217 THEN convert_from(substring(b FROM p + 3 FOR e - p - 2), 'UTF8')
        WHEN c = 218 THEN convert_from(substring(b FROM p + 4 FOR e - p - 3), 'UTF8')
        WHEN c = 219 THEN convert_from(substring(b FROM p + 6 FOR e - p - 5), 'UTF8')
        WHEN c BETWEEN 204 AND 207 THEN mp_uint(b, p + 1, e - p - 1)::text
        WHEN c = 208 THEN (get_byte(b, p + 1) - CASE WHEN get_byte(b, p + 1) > 127 THEN 256 ELSE 0 END)::text
        WHEN c = 209 THEN (mp_uint(b, p + 1, 2) - CASE WHEN get_byte(b, p + 1) > 127 THEN 65536 ELSE 0 END)::text
        WHEN c = 210 THEN (mp_uint(b, p + 1, 4) - CASE WHEN get_byte(b, p + 1) > 127 THEN 4294967296 ELSE 0 END)::text
        WHEN c = 211 THEN ('x' || encode(substring(b FROM p + 2 FOR 8), 'hex'))::bit(64)::int8::text
        ELSE encode(substring(b FROM p + 1 FOR e - p), 'hex') END;
END
$$;

-- The key of a run's input data for a key spec (comma-separated paths;
-- NULL: the workflow as a whole, key '').
CREATE OR REPLACE FUNCTION flow_key_of(p_data bytea, p_spec text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path FROM CURRENT AS $$
    SELECT CASE WHEN p_spec IS NULL OR p_spec = '' THEN ''
                ELSE (SELECT string_agg(coalesce(mp_path(p_data, string_to_array(trim(s.p), '.')), ''),
                                        '/' ORDER BY s.i)
                        FROM unnest(string_to_array(p_spec, ',')) WITH ORDINALITY AS s(p, i)) END;
$$;

-- ---- the triggers (created by flow_enable) ------------------------------------
--
-- A new queue item of a workflow with flow control gets its keys, and its
-- rank from the workflow's priority.  Items of group members (op_key set)
-- belong to a run that holds its slot already: nothing to check.
CREATE OR REPLACE FUNCTION flow_item() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
    w record;
    v_data bytea;
BEGIN
    IF NEW.op_key IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT f.concurrency_limit, f.concurrency_key, f.rate_limit, f.rate_key, f.priority INTO w
      FROM workflows f WHERE f.workflow_id = NEW.workflow_id;
    IF NOT FOUND OR (w.concurrency_limit IS NULL AND w.rate_limit IS NULL AND w.priority = 0) THEN
        RETURN NEW;
    END IF;
    IF w.concurrency_limit IS NOT NULL OR w.rate_limit IS NOT NULL THEN
        SELECT r.data INTO v_data FROM runs r WHERE r.run_id = NEW.run_id;
        -- The key rows are made here, so the claim never has to insert
        -- (an insert waits for a concurrent one of the same key).
        IF w.concurrency_limit IS NOT NULL THEN
            NEW.flow_key := flow_key_of(v_data, w.concurrency_key);
            INSERT INTO flow_slots (workflow_id, key) VALUES (NEW.workflow_id, NEW.flow_key)
            ON CONFLICT DO NOTHING;
        END IF;
        IF w.rate_limit IS NOT NULL THEN
            NEW.rate_key := flow_key_of(v_data, w.rate_key);
            INSERT INTO flow_rates (workflow_id, key) VALUES (NEW.workflow_id, NEW.rate_key)
            ON CONFLICT DO NOTHING;
        END IF;
    END IF;
    NEW.rank_at := NEW.created_at - w.priority * interval '1 second';
    IF NEW.visible_at <= NEW.created_at THEN -- a delayed start keeps its time
        NEW.visible_at := NEW.rank_at;
    END IF;
    RETURN NEW;
END
$$;

-- Hand a freed slot to the best parked run of the key (or more, when the
-- limit was raised).  The caller holds the key's flow_slots row.
CREATE OR REPLACE FUNCTION flow_unpark(p_workflow text, p_key text, p_count int) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
    UPDATE exec_queue q
       SET flow_parked = false, visible_at = least(coalesce(q.rank_at, now()), now())
     WHERE q.item_id IN (SELECT p.item_id FROM exec_queue p
                          WHERE p.workflow_id = p_workflow AND p.flow_key = p_key
                            AND p.flow_parked
                          ORDER BY p.rank_at, p.item_id
                          LIMIT greatest(p_count, 1) FOR UPDATE);
$$;

-- A run that ends gives its slot back (any end: completed, failed, or
-- ended by an operator).
CREATE OR REPLACE FUNCTION flow_run_end() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
    v_key text;
    v_free int;
BEGIN
    DELETE FROM flow_holders h WHERE h.run_id = NEW.run_id RETURNING h.key INTO v_key;
    IF v_key IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE flow_slots s SET in_flight = greatest(s.in_flight - 1, 0)
      FROM workflows w
     WHERE s.workflow_id = NEW.workflow_id AND s.key = v_key AND w.workflow_id = s.workflow_id
    RETURNING coalesce(w.concurrency_limit, 1000000) - s.in_flight INTO v_free;
    PERFORM flow_unpark(NEW.workflow_id, v_key, coalesce(v_free, 1));
    RETURN NULL;
END
$$;

-- Create the triggers once some workflow has flow control (idempotent;
-- the lock makes two masters registering at once create them once).
-- SECURITY DEFINER: the schema's owner (who migrated) creates the
-- triggers; a runtime role without ownership may still register
-- workflows that declare flow control (docs/security.md).
CREATE OR REPLACE FUNCTION flow_enable() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    FOR i IN 1 .. 200 LOOP
        IF EXISTS (SELECT 1 FROM pg_trigger
                    WHERE tgrelid = 'exec_queue'::regclass AND tgname = 'exec_queue_flow') THEN
            RETURN;
        END IF;
        -- Starts lock runs then exec_queue, ends the other way round: a
        -- lock held here while waiting for the second could deadlock with
        -- either.  So each attempt waits 20 ms at most (the others never
        -- reach their deadlock check) and gives both back before retrying.
        BEGIN
            PERFORM set_config('lock_timeout', '20ms', true);
            LOCK TABLE runs, exec_queue IN SHARE ROW EXCLUSIVE MODE;
            PERFORM set_config('lock_timeout', '0', true);
            IF NOT EXISTS (SELECT 1 FROM pg_trigger
                            WHERE tgrelid = 'exec_queue'::regclass
                              AND tgname = 'exec_queue_flow') THEN
                CREATE TRIGGER exec_queue_flow BEFORE INSERT ON exec_queue
                    FOR EACH ROW EXECUTE FUNCTION flow_item();
                CREATE TRIGGER runs_flow_end AFTER UPDATE OF status ON runs
                    FOR EACH ROW WHEN (OLD.status = 'pending' AND NEW.status <> 'pending')
                    EXECUTE FUNCTION flow_run_end();
            END IF;
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM set_config('lock_timeout', '0', true);
            PERFORM pg_sleep(0.005 + random() * 0.02);
        END;
    END LOOP;
    RAISE EXCEPTION 'flow control: could not lock runs and exec_queue to create its triggers'
        USING ERRCODE = '55P03', HINT = 'Retry when the queue is less busy.';
END
$$;

-- ---- setting it --------------------------------------------------------------
--
-- set_flow_control(workflow, ...): flow control of a workflow, from SQL
-- (for workflows served by another deployment) or by a master publishing
-- what its library declares.  NULL limits: none.  A raised limit hands
-- the new slots to parked runs at once.
CREATE OR REPLACE FUNCTION set_flow_control(p_workflow text, p_concurrency_limit int DEFAULT NULL,
                                 p_concurrency_key text DEFAULT NULL,
                                 p_rate_limit int DEFAULT NULL, p_rate_period_ms int DEFAULT NULL,
                                 p_rate_key text DEFAULT NULL, p_priority int DEFAULT 0)
RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    s record;
BEGIN
    PERFORM check_name('a workflow', p_workflow);
    IF (p_rate_limit IS NULL) <> (p_rate_period_ms IS NULL) THEN
        RAISE EXCEPTION 'a rate limit needs both a count and a period'
            USING ERRCODE = '22023';
    END IF;
    UPDATE workflows
       SET concurrency_limit = p_concurrency_limit,
           concurrency_key = nullif(p_concurrency_key, ''),
           rate_limit = p_rate_limit, rate_period_ms = p_rate_period_ms,
           rate_key = nullif(p_rate_key, ''), priority = coalesce(p_priority, 0)
     WHERE workflow_id = p_workflow;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown workflow ''%'': no master has registered it in schema "%"',
            p_workflow, current_schema() USING ERRCODE = 'SK002';
    END IF;
    IF p_concurrency_limit IS NOT NULL OR p_rate_limit IS NOT NULL
       OR coalesce(p_priority, 0) <> 0 THEN
        PERFORM flow_enable();
    END IF;
    FOR s IN SELECT f.key, f.in_flight FROM flow_slots f
              WHERE f.workflow_id = p_workflow ORDER BY f.key FOR UPDATE LOOP
        PERFORM flow_unpark(p_workflow, s.key,
                            coalesce(p_concurrency_limit, 1000000) - s.in_flight);
    END LOOP;
END
$$;

-- ---- admission, in the claim --------------------------------------------------
--
-- flow_admit(item, run, workflow, concurrency key, rate key): called by
-- claim() for an item it has locked (not yet updated) that still has a
-- key to pass.  Returns
--   'ok'       the run may go: it holds its slot, the rate took it;
--   'parked'   its key is full: parked until a slot of the key is freed;
--   'delayed'  the rate is used up: visible again when it allows;
--   'busy'     another transaction holds the key's row: try another item.
-- Key rows are locked with SKIP LOCKED, never waited for: a worker's
-- transaction that ends a run (and so holds its key's row) claims the
-- next item in the same transaction, and waiting there for another key's
-- row could deadlock with a worker doing the same the other way round.
-- Runs inside the claim's transaction: a lost claim loses its admission.
CREATE OR REPLACE FUNCTION flow_admit(p_item bigint, p_run uuid, p_workflow text, p_key text,
                           p_rate_key text) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
    w record;
    v_n int;
    v_hits bigint[];
    v_next int;
    v_now bigint := (extract(epoch FROM clock_timestamp()) * 1000)::int8;
    v_slot boolean := false;
BEGIN
    SELECT f.concurrency_limit, f.rate_limit, f.rate_period_ms INTO w
      FROM workflows f WHERE f.workflow_id = p_workflow;
    IF p_key IS NOT NULL AND w.concurrency_limit IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM flow_holders h WHERE h.run_id = p_run) THEN
        SELECT s.in_flight INTO v_n FROM flow_slots s
         WHERE s.workflow_id = p_workflow AND s.key = p_key FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            IF EXISTS (SELECT 1 FROM flow_slots s
                        WHERE s.workflow_id = p_workflow AND s.key = p_key) THEN
                RETURN 'busy';
            END IF;
            -- (flow_item made it at start; a limit set later comes here once)
            INSERT INTO flow_slots (workflow_id, key) VALUES (p_workflow, p_key)
            ON CONFLICT DO NOTHING;
            RETURN 'busy';
        END IF;
        IF v_n >= w.concurrency_limit THEN
            UPDATE exec_queue
               SET visible_at = 'infinity', flow_parked = true,
                   rank_at = coalesce(rank_at, least(visible_at, created_at))
             WHERE item_id = p_item;
            RETURN 'parked';
        END IF;
        v_slot := true;
    END IF;
    IF p_rate_key IS NOT NULL AND w.rate_limit IS NOT NULL THEN
        SELECT r.hits, r.next INTO v_hits, v_next FROM flow_rates r
         WHERE r.workflow_id = p_workflow AND r.key = p_rate_key FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            IF NOT EXISTS (SELECT 1 FROM flow_rates r
                            WHERE r.workflow_id = p_workflow AND r.key = p_rate_key) THEN
                INSERT INTO flow_rates (workflow_id, key) VALUES (p_workflow, p_rate_key)
                ON CONFLICT DO NOTHING;
            END IF;
            RETURN 'busy';
        END IF;
        -- The ring holds the last rate_limit admissions; hits[next] is the
        -- oldest of them once it is full (a lowered limit restarts it).
        IF cardinality(v_hits) > w.rate_limit THEN
            v_hits := '{}';
            v_next := 1;
        END IF;
        IF cardinality(v_hits) = w.rate_limit
           AND v_hits[v_next] > v_now - w.rate_period_ms THEN
            UPDATE exec_queue
               SET visible_at = to_timestamp((v_hits[v_next] + w.rate_period_ms + 1) / 1000.0)
             WHERE item_id = p_item;
            RETURN 'delayed';
        END IF;
        IF cardinality(v_hits) < w.rate_limit THEN
            v_hits := v_hits || v_now;
            v_next := 1;
        ELSE
            v_hits[v_next] := v_now;
            v_next := v_next % w.rate_limit + 1;
        END IF;
        UPDATE flow_rates SET hits = v_hits, next = v_next
         WHERE workflow_id = p_workflow AND key = p_rate_key;
    END IF;
    IF v_slot THEN
        UPDATE flow_slots SET in_flight = in_flight + 1
         WHERE workflow_id = p_workflow AND key = p_key;
        INSERT INTO flow_holders (run_id, workflow_id, key) VALUES (p_run, p_workflow, p_key);
    END IF;
    UPDATE exec_queue SET flow_key = NULL, rate_key = NULL WHERE item_id = p_item;
    RETURN 'ok';
END
$$;

-- ---- the claim ----------------------------------------------------------------
--
-- 006's claim with one change (marked 010): the locked item's flow_key
-- and rate_key are read with it, and an item that has one goes through
-- flow_admit before it is leased; one parked, delayed or whose key row is
-- busy is left and the claim tries the next (up to 32 in one call).  Items
-- without flow control (every item of a schema that uses none) pay two
-- more columns read from the row the claim locks anyway, and an empty
-- skip list.
CREATE OR REPLACE FUNCTION claim(p_lease_ms int, p_worker text, p_workflows text[])
RETURNS TABLE (next_ms bigint, item_id bigint, epoch int, run_id text, item_op text,
               workflow_id text, event_id text, trigger_type text, trigger_name text,
               data bytea, status text, attempt int, attempt_ops int, created_ms bigint,
               op_key text, step_id text, op_status text, result bytea, attempts int,
               kind text, wait_info bytea, wake_seq int, takeovers int)
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
#variable_conflict use_column
DECLARE
    v_item bigint;
    v_wf text;
    v_run uuid;
    v_epoch int;
    v_op text;
    v_wake int;
    v_takeovers int;
    v_next bigint;
    v_more boolean;
    v_fkey text;
    v_rkey text;
    v_busy boolean := false;
    v_skip bigint[] := '{}';
    v_admit text;
BEGIN
    -- 010: an item that must pass flow control and does not is handed
    -- back by flow_admit (parked or delayed) and the next one is tried.
    FOR v_try IN 1 .. 32 LOOP
    v_item := NULL;
    IF cardinality(p_workflows) = 1 THEN
        SELECT q.item_id, q.run_id, q.flow_key, q.rate_key INTO v_item, v_run, v_fkey, v_rkey
          FROM exec_queue q
         WHERE q.workflow_id = p_workflows[1] AND q.visible_at <= now()
           AND q.item_id <> ALL (v_skip)
         ORDER BY q.visible_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    ELSE
        FOR v_wf IN
            SELECT w.id FROM unnest(p_workflows) AS w(id)
             CROSS JOIN LATERAL (SELECT q.visible_at FROM exec_queue q
                                  WHERE q.workflow_id = w.id AND q.visible_at <= now()
                                    AND q.epoch >= 0 -- a heap read: see the next-due note
                                    AND q.item_id <> ALL (v_skip)
                                  ORDER BY q.visible_at LIMIT 1) h
             ORDER BY h.visible_at
        LOOP
            SELECT q.item_id, q.run_id, q.flow_key, q.rate_key
              INTO v_item, v_run, v_fkey, v_rkey
              FROM exec_queue q
             WHERE q.workflow_id = v_wf AND q.visible_at <= now()
               AND q.item_id <> ALL (v_skip)
             ORDER BY q.visible_at LIMIT 1 FOR UPDATE SKIP LOCKED;
            EXIT WHEN v_item IS NOT NULL;
        END LOOP;
    END IF;
    EXIT WHEN v_item IS NULL OR (v_fkey IS NULL AND v_rkey IS NULL);
    SELECT q.workflow_id INTO v_wf FROM exec_queue q WHERE q.item_id = v_item;
    v_admit := flow_admit(v_item, v_run, v_wf, v_fkey, v_rkey);
    EXIT WHEN v_admit = 'ok';
    IF v_admit = 'busy' THEN
        v_skip := v_skip || v_item; -- (locked till commit: other claims skip it too)
    END IF;
    v_item := NULL;
    v_busy := true; -- more may be ready: the worker asks again soon
    END LOOP;

    IF v_item IS NOT NULL THEN
        UPDATE exec_queue e
           SET epoch = e.epoch + 1, leased = true,
               takeovers = CASE WHEN e.leased THEN e.takeovers + 1 ELSE 0 END,
               visible_at = now() + p_lease_ms * interval '1 millisecond',
               claimed_by = p_worker
         WHERE e.item_id = v_item
        RETURNING e.run_id, e.epoch, e.op_key, e.wake_seq, e.takeovers
             INTO v_run, v_epoch, v_op, v_wake, v_takeovers;
    END IF;

    IF v_item IS NULL THEN
        -- The earliest later item of each workflow.  It reads a heap column
        -- (epoch) on purpose: a plain index scan marks the entries of
        -- deleted items dead as it passes them, an index-only scan does not
        -- and would wade through every lease of the last minutes each time.
        SELECT min(h.v) INTO v_next
          FROM unnest(p_workflows) AS w(id)
         CROSS JOIN LATERAL (SELECT (extract(epoch FROM q.visible_at - now()) * 1000)::int8 AS v
                               FROM exec_queue q
                              WHERE q.workflow_id = w.id AND q.visible_at > now()
                                AND q.visible_at < 'infinity' AND q.epoch >= 0
                              ORDER BY q.visible_at LIMIT 1) h;
        IF v_busy THEN
            v_next := 1; -- (0 would not arm the timer)
        END IF;
        RETURN QUERY SELECT v_next, NULL::bigint, NULL::int, NULL::text, NULL::text, NULL::text,
                            NULL::text, NULL::text, NULL::text, NULL::bytea, NULL::text,
                            NULL::int, NULL::int, NULL::bigint, NULL::text, NULL::text,
                            NULL::text, NULL::bytea, NULL::int, NULL::text, NULL::bytea,
                            NULL::int, NULL::int;
        RETURN;
    END IF;

    -- Another ready item (ours is due at the lease expiry now).
    SELECT EXISTS (SELECT 1 FROM unnest(p_workflows) AS w(id)
                    CROSS JOIN LATERAL (SELECT 1 FROM exec_queue q
                                         WHERE q.workflow_id = w.id AND q.visible_at <= now()
                                           AND q.epoch >= 0
                                         LIMIT 1) h)
      INTO v_more;

    RETURN QUERY
    SELECT CASE WHEN v_more THEN 0::bigint END, v_item, v_epoch, v_run::text, v_op,
           r.workflow_id, r.event_id::text,
           r.trigger_type, r.trigger_name, r.data, r.status, r.attempt, r.attempt_ops,
           (extract(epoch FROM r.created_at) * 1000)::int8,
           o.op_key, o.step_id, o.status, o.result, o.attempts, o.kind, o.wait_info,
           v_wake, v_takeovers
      FROM (SELECT v_run AS id) k
      LEFT JOIN runs r ON r.run_id = k.id
      LEFT JOIN ops o ON o.run_id = k.id;
END
$$;

-- ---- starting with options ---------------------------------------------------
--
-- These wrap start_run_msgpack (whatever version is installed) and adjust
-- the new run's queue item in the same transaction, before any claim can
-- see it; the shared start functions are not changed.

-- Set the priority of a run not yet claimed: it ranks as if queued
-- p_priority seconds before it was.
CREATE OR REPLACE FUNCTION flow_set_priority(p_run uuid, p_priority int) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
BEGIN
    IF p_priority IS NULL THEN
        RETURN;
    END IF;
    IF p_priority NOT BETWEEN 0 AND 86400 THEN
        RAISE EXCEPTION 'priority % is out of range 0..86400', p_priority USING ERRCODE = '22023';
    END IF;
    UPDATE exec_queue q
       SET rank_at = q.created_at - p_priority * interval '1 second',
           visible_at = CASE WHEN q.visible_at <= q.created_at
                             THEN q.created_at - p_priority * interval '1 second'
                             ELSE q.visible_at END
     WHERE q.run_id = p_run AND q.op_key IS NULL AND q.epoch = 0;
END
$$;

-- start_run_msgpack with a priority (NULL: the workflow's).
CREATE OR REPLACE FUNCTION start_run_msgpack_prio(p_workflow text, p_data bytea, p_notify_end boolean,
                                       p_priority int)
RETURNS TABLE (run_id uuid, event_id uuid)
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
#variable_conflict use_column
DECLARE
    v_run uuid;
    v_event uuid;
BEGIN
    IF p_priority IS NOT NULL AND p_priority NOT BETWEEN 0 AND 86400 THEN
        RAISE EXCEPTION 'priority % is out of range 0..86400', p_priority USING ERRCODE = '22023';
    END IF;
    SELECT s.run_id, s.event_id INTO v_run, v_event
      FROM start_run_msgpack(p_workflow, p_data, p_notify_end) s;
    PERFORM flow_set_priority(v_run, p_priority);
    RETURN QUERY SELECT v_run, v_event;
END
$$;

-- start_run(workflow, input jsonb) with a priority.
CREATE OR REPLACE FUNCTION start_run_prio(p_workflow text, p_input jsonb, p_priority int) RETURNS uuid
LANGUAGE sql SET search_path FROM CURRENT AS $$
    SELECT s.run_id FROM start_run_msgpack_prio(p_workflow, mp_payload(p_input, 'input'), false,
                                                p_priority) s;
$$;

-- Debounce: start a run of p_workflow that waits p_window_ms before it
-- starts; another start with the same key while that run has not started
-- replaces its input with the new one and pushes its start to
-- p_window_ms after now.  Returns the run that stands for the key (a new
-- one when the last had started already, or ended).
CREATE OR REPLACE FUNCTION start_run_debounced(p_workflow text, p_input jsonb, p_key text,
                                    p_window_ms bigint) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
    v_run uuid;
    v_item bigint;
    v_data bytea := mp_payload(p_input, 'input');
BEGIN
    IF p_key IS NULL OR p_window_ms IS NULL OR p_window_ms < 0 THEN
        RAISE EXCEPTION 'debounce needs a key and a window >= 0 ms' USING ERRCODE = '22023';
    END IF;
    PERFORM check_name('a workflow', p_workflow);
    -- The key's row serialises the starts of one key.
    INSERT INTO flow_start_keys AS k (workflow_id, mode, key, run_id)
    VALUES (p_workflow, 'debounce', p_key, '00000000-0000-0000-0000-000000000000')
    ON CONFLICT (workflow_id, mode, key) DO UPDATE SET key = EXCLUDED.key
    RETURNING k.run_id INTO v_run;
    -- Its queue item, locked: a claim skips it meanwhile; one that took it
    -- first has moved its epoch (started: not replaced).
    SELECT q.item_id INTO v_item FROM exec_queue q
     WHERE q.run_id = v_run AND q.op_key IS NULL AND q.epoch = 0 AND NOT q.leased
       AND NOT q.flow_parked
       FOR UPDATE;
    IF v_item IS NOT NULL THEN
        -- The keys follow the new input.
        UPDATE exec_queue q
           SET visible_at = now() + p_window_ms * interval '1 millisecond',
               flow_key = CASE WHEN q.flow_key IS NOT NULL
                               THEN flow_key_of(v_data, w.concurrency_key) END,
               rate_key = CASE WHEN q.rate_key IS NOT NULL
                               THEN flow_key_of(v_data, w.rate_key) END
          FROM workflows w
         WHERE q.item_id = v_item AND w.workflow_id = q.workflow_id;
        UPDATE runs SET data = v_data WHERE run_id = v_run AND status = 'pending';
        RETURN v_run;
    END IF;
    SELECT s.run_id INTO v_run FROM start_run_msgpack(p_workflow, v_data, false) s;
    UPDATE exec_queue q SET visible_at = now() + p_window_ms * interval '1 millisecond'
     WHERE q.run_id = v_run AND q.op_key IS NULL;
    UPDATE flow_start_keys SET run_id = v_run, started_at = now()
     WHERE workflow_id = p_workflow AND mode = 'debounce' AND key = p_key;
    RETURN v_run;
END
$$;

-- Singleton: start a run unless one started with the same key less than
-- p_window_ms ago, or is still pending (p_window_ms NULL: only while it
-- is pending); then return that run and start nothing.
CREATE OR REPLACE FUNCTION start_run_singleton(p_workflow text, p_input jsonb, p_key text,
                                    p_window_ms bigint DEFAULT NULL) RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
    v_run uuid;
    v_at timestamptz;
BEGIN
    IF p_key IS NULL OR p_window_ms < 0 THEN
        RAISE EXCEPTION 'singleton needs a key (and a window >= 0 ms)' USING ERRCODE = '22023';
    END IF;
    PERFORM check_name('a workflow', p_workflow);
    INSERT INTO flow_start_keys AS k (workflow_id, mode, key, run_id, started_at)
    VALUES (p_workflow, 'singleton', p_key, '00000000-0000-0000-0000-000000000000', '-infinity')
    ON CONFLICT (workflow_id, mode, key) DO UPDATE SET key = EXCLUDED.key
    RETURNING k.run_id, k.started_at INTO v_run, v_at;
    IF v_at > now() - coalesce(p_window_ms, 0) * interval '1 millisecond'
       OR EXISTS (SELECT 1 FROM runs r WHERE r.run_id = v_run AND r.status = 'pending') THEN
        RETURN v_run;
    END IF;
    SELECT s.run_id INTO v_run
      FROM start_run_msgpack(p_workflow, mp_payload(p_input, 'input'), false) s;
    UPDATE flow_start_keys SET run_id = v_run, started_at = now()
     WHERE workflow_id = p_workflow AND mode = 'singleton' AND key = p_key;
    RETURN v_run;
END
$$;

-- Additive for binaries of schema 8 and later (009's compat rule): new
-- columns with defaults, new tables and functions; claim() keeps its
-- signature, and a run's end gives its slot back by trigger, whoever ends it.
INSERT INTO schema_migrations (version, name, compat_floor) VALUES (10, '010_flow', 8);
