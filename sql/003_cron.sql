-- 003_cron: cron triggers, leaderless.
--
-- Every worker of every master computes the ticks of the schedules it knows
-- (worker/sk_sched.c) and, at each tick, calls fire_cron.  The primary key
-- of cron_ticks makes the first call for a (workflow, schedule, tick) start
-- the run and every later one a no-op: one run per tick in the whole
-- cluster with no leader to elect.  docs/cron.md has the rules.

-- One row per fired tick.  The newest row of a (workflow, schedule) is where
-- a scheduler starting after a full outage resumes (catch-up).
CREATE TABLE cron_ticks (
    workflow_id text NOT NULL,
    schedule    text NOT NULL,                 -- the expression as registered
    tick_at     timestamptz NOT NULL,          -- the scheduled tick, not the firing time
    run_id      uuid NOT NULL,                 -- the run this tick started
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, schedule, tick_at)
);

-- Fire one tick: start a cron run of p_workflow with input data p_data
-- (msgpack {tick, schedule}) unless that tick was fired already.  Returns
-- the new run's id, or NULL when another worker (of any master) won.  The
-- exec_queue insert notifies the workers.  Ticks of the same schedule more
-- than 7 days older than this one are deleted on the way, which never
-- touches the newest tick.
CREATE FUNCTION fire_cron(p_workflow text, p_schedule text, p_tick timestamptz, p_data bytea)
RETURNS uuid
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    v_run uuid := gen_random_uuid();
BEGIN
    INSERT INTO cron_ticks (workflow_id, schedule, tick_at, run_id)
    VALUES (p_workflow, p_schedule, p_tick, v_run)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data)
    VALUES (v_run, p_workflow, gen_random_uuid(), 'cron', p_workflow, p_data);
    INSERT INTO exec_queue (run_id, workflow_id) VALUES (v_run, p_workflow);
    DELETE FROM cron_ticks
     WHERE workflow_id = p_workflow AND schedule = p_schedule
       AND tick_at < p_tick - interval '7 days';
    RETURN v_run;
END
$$;


INSERT INTO schema_migrations (version, name) VALUES (3, '003_cron');
