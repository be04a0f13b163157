-- Retention of finished jobs, and pausing queues.
--
-- Both are run by clients with few rights, so the functions that change
-- rows run as their owner (SECURITY DEFINER) with a fixed search_path, and
-- only the roles named below may call them (functions are executable by
-- everyone unless revoked).

-- MARK: Queue pause and resume

-- One row per queue an operator has paused (or paused and resumed). A
-- queue with no row is running; queues themselves need no registration.
CREATE TABLE hl.queues (
    name       text PRIMARY KEY,
    paused_at  timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),

    CONSTRAINT queues_name_sane CHECK (btrim(name) <> '' AND char_length(name) <= 128)
);

COMMENT ON TABLE hl.queues IS
    'Paused queues: workers claim nothing from a queue whose paused_at is set. '
    'Use hl.pause_queue(name) and hl.resume_queue(name).';

-- For dashboards, which read views only.
CREATE VIEW hl.paused_queues AS
    SELECT name AS queue, paused_at FROM hl.queues WHERE paused_at IS NOT NULL;

COMMENT ON VIEW hl.paused_queues IS 'Queues whose jobs no worker claims until resumed.';

-- Pausing needs no message: the claim queries read hl.queues on every
-- claim, so the next claim of every worker honours it. Resuming must wake
-- idle workers, which otherwise sleep until their next poll: the same
-- hl_jobs notification an insert sends. A trigger, so that resuming with
-- plain SQL (UPDATE or DELETE) wakes them too.
CREATE FUNCTION hl.queues_notify_resumed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.paused_at IS NOT NULL THEN
            PERFORM pg_notify('hl_jobs', OLD.name);
        END IF;
    ELSIF OLD.paused_at IS NOT NULL AND NEW.paused_at IS NULL THEN
        PERFORM pg_notify('hl_jobs', NEW.name);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER queues_notify_resumed
    AFTER UPDATE OF paused_at OR DELETE ON hl.queues
    FOR EACH ROW EXECUTE FUNCTION hl.queues_notify_resumed();

-- Returns true when this call paused the queue, false when it was paused
-- already (its paused_at is kept).
CREATE FUNCTION hl.pause_queue(q text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO hl.queues AS p (name, paused_at, updated_at) VALUES (q, now(), now())
    ON CONFLICT (name) DO UPDATE SET paused_at = now(), updated_at = now()
        WHERE p.paused_at IS NULL;
    RETURN FOUND;
END
$$;

-- Returns true when this call resumed the queue, false when it was not
-- paused.
CREATE FUNCTION hl.resume_queue(q text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE hl.queues SET paused_at = NULL, updated_at = now()
    WHERE name = q AND paused_at IS NOT NULL;
    RETURN FOUND;
END
$$;

-- MARK: Retention

-- Deletes up to `batch` finished jobs: completed and cancelled ones that
-- finished more than `retain_completed` ago, discarded ones more than
-- `retain_discarded` ago (NULL keeps that kind forever). Returns how many
-- it deleted; call it again while that equals `batch`.
--
-- Built to run from every worker without hurting the queue:
--   * one pruner at a time per database: a transaction-scoped advisory
--     lock, tried, never waited for; the others return 0 at once;
--   * short: each call deletes at most `batch` rows in its own transaction,
--     so locks are held briefly and vacuum keeps up;
--   * non-blocking: rows someone else holds (a user editing one) are
--     skipped, not waited for;
--   * cheap: each kind is found through jobs_finished (state, finished_at)
--     from the oldest end, and deleted by ctid.
CREATE FUNCTION hl.prune_finished(retain_completed interval, retain_discarded interval, batch integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- "hl-prune" in ASCII.
    lock_key constant bigint := 7524439038409141861;
    rule record;
    deleted integer;
    total integer := 0;
BEGIN
    IF batch IS NULL OR batch < 1 THEN
        RAISE EXCEPTION 'batch must be a positive number of rows, not %', batch
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF retain_completed < interval '0' OR retain_discarded < interval '0' THEN
        RAISE EXCEPTION 'retention periods must not be negative'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_xact_lock(lock_key) THEN
        RETURN 0;
    END IF;
    FOR rule IN
        SELECT * FROM (VALUES ('completed', retain_completed),
                              ('cancelled', retain_completed),
                              ('discarded', retain_discarded)) AS r(state, retain)
        WHERE r.retain IS NOT NULL
    LOOP
        -- The state and age are checked again by the DELETE: a locked row
        -- may have changed since the scan found it.
        DELETE FROM hl.jobs
        WHERE ctid = ANY (ARRAY(
                  SELECT ctid FROM hl.jobs
                  WHERE state = rule.state AND finished_at < now() - rule.retain
                  ORDER BY finished_at
                  LIMIT batch - total
                  FOR UPDATE SKIP LOCKED))
          AND state = rule.state AND finished_at < now() - rule.retain;
        GET DIAGNOSTICS deleted = ROW_COUNT;
        total := total + deleted;
        EXIT WHEN total >= batch;
    END LOOP;
    RETURN total;
END
$$;

-- MARK: Grants

REVOKE EXECUTE ON FUNCTION hl.pause_queue(text), hl.resume_queue(text),
    hl.prune_finished(interval, interval, integer) FROM PUBLIC;

-- Workers check for paused queues on every claim and prune; pausing is an
-- operator's `hl-worker queue pause`, usually run with the workers'
-- credentials, and a role that can fail every job may as well hold them.
GRANT SELECT ON hl.queues, hl.paused_queues TO hl_worker;
GRANT SELECT ON hl.paused_queues TO hl_dashboard;
GRANT EXECUTE ON FUNCTION hl.pause_queue(text), hl.resume_queue(text),
    hl.prune_finished(interval, interval, integer) TO hl_worker;
