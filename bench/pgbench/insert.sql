-- (a) one single-row INSERT per transaction (autocommit).
\set v random(1, 1000000)
INSERT INTO ins (v) VALUES (:v);
