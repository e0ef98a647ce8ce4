-- `INSERT OR REPLACE` / `REPLACE INTO` would delete a conflicting event row without firing the
-- DELETE trigger (SQLite fires it only with recursive_triggers, a setting of the writer's own
-- connection). Refuse any insert that reuses an existing seq, so history cannot be rewritten
-- that way either.
CREATE TRIGGER events_refuse_replace BEFORE INSERT ON events
WHEN EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq)
BEGIN
    SELECT RAISE(ABORT, 'events are append-only: REPLACE refused');
END;
