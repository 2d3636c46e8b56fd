-- The tables of the pgbench ceiling (bench/run-bench.sh runs this before
-- each pgbench run, with search_path set to the ceiling's own schema).
-- Shaped like the engine's: a queue claimed oldest first, and results
-- keyed by (run, step) with random uuids.
DROP TABLE IF EXISTS ins, q, results;

-- (a) one single-row INSERT per transaction.
CREATE TABLE ins (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    v          int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- (b) the checkpoint transaction: claim the oldest ready row of q and
-- delete it, insert a result, insert the successor into q.
CREATE TABLE q (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id   uuid NOT NULL,
    ready_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX q_ready ON q (ready_at);

CREATE TABLE results (
    run_id     uuid NOT NULL,
    step       int NOT NULL,
    result     bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, step)
);

-- Pre-filled: every client always finds a ready row.
INSERT INTO q (run_id, ready_at)
SELECT gen_random_uuid(), now() - interval '1 hour' + g * interval '1 millisecond'
  FROM generate_series(1, 1000) g;
