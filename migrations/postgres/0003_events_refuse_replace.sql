-- The SQLite catalog's 0003 refuses an insert that reuses an existing seq (SQLite's REPLACE
-- deletes the old row without firing DELETE triggers). PostgreSQL has no REPLACE: a plain
-- INSERT of an existing seq already fails on the primary key, and `ON CONFLICT DO UPDATE`
-- fires the UPDATE trigger of 0001. This trigger makes the refusal the same on both dialects,
-- with the same message, and also refuses `ON CONFLICT DO NOTHING` aimed at an existing seq
-- instead of letting it pass silently. (The primary key still decides races between inserts.)
CREATE FUNCTION events_refuse_reused_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM events WHERE seq = NEW.seq) THEN
        RAISE EXCEPTION 'events are append-only: REPLACE of seq % refused', NEW.seq
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_refuse_replace BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_reused_seq();
