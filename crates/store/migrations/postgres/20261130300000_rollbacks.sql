-- Rollbacks of promotions: which rollback point was undone, by which revert commit on the
-- target branch, who asked and when. A rollback point is rolled back at most once.

CREATE TABLE rollbacks (
    point_id TEXT PRIMARY KEY REFERENCES rollback_points (id),
    revert_commit TEXT NOT NULL,
    actor TEXT NOT NULL,
    at BIGINT NOT NULL
);

-- `rollback list` (newest first), `rollback --commit` and `rollback cleanup --older-than`.
CREATE INDEX rollback_points_by_created ON rollback_points (created_at);
CREATE INDEX rollback_points_by_merge ON rollback_points (merge_commit);
