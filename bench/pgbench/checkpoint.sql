-- (b) the least a durable step checkpoint costs: claim the oldest ready
-- queue row (SKIP LOCKED) and delete it, record the step's result, queue
-- the successor; one commit.
\set step random(1, 2000000000)
BEGIN;
WITH c AS (SELECT id FROM q ORDER BY ready_at LIMIT 1 FOR UPDATE SKIP LOCKED)
DELETE FROM q USING c WHERE q.id = c.id;
INSERT INTO results (run_id, step, result) VALUES (gen_random_uuid(), :step, '\xc0');
INSERT INTO q (run_id) VALUES (gen_random_uuid());
END;
