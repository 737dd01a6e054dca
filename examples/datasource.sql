-- The example datasource: 12 groups and 300 users, as a directory might hold
-- them. `examples/quickstart.sh` loads it into a fresh SQLite file.
CREATE TABLE groups (
    gid INTEGER PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE users (
    uid INTEGER PRIMARY KEY,
    login TEXT NOT NULL,
    first TEXT NOT NULL,
    last TEXT NOT NULL,
    gid INTEGER REFERENCES groups (gid),
    password TEXT
);

WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12)
INSERT INTO groups SELECT i, 'group' || i FROM n;

WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
INSERT INTO users
SELECT i,
       'user' || i,
       'First' || i,
       'Last' || i,
       1 + (i % 12),
       'secret-' || hex(randomblob(8))
FROM n;
