-- Finance hears when a budget line nears its limit (services/claims/budget_watch.py): a job
-- adds the discount cost booked in the ledger since its last run to a running total per
-- budget line and budget year, and records each threshold the total crosses, once.

-- One row: how far the ledger has been counted. Locked by the run that counts, so two claims
-- processes never count the same transfers twice.
CREATE TABLE budget_watch_progress (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    -- Transfers created before this moment are counted; NULL: none yet (the first run
    -- counts the whole ledger).
    watermark timestamptz,
    ran_at    timestamptz
);
INSERT INTO budget_watch_progress DEFAULT VALUES;

-- The net discount cost booked on `expense:discount:<line>` in a budget year, up to the
-- watermark: what the finance report's budget consumption says for that year.
CREATE TABLE budget_line_consumption (
    budget_line    text   NOT NULL,
    budget_year    int    NOT NULL,
    consumed_cents bigint NOT NULL,
    PRIMARY KEY (budget_line, budget_year)
);

-- Each threshold crossed, once: a reversal that drops a line below it and a claim that
-- lifts it over again find the row taken and tell nobody a second time. `announced` is
-- false for a crossing found in a budget year that was over when the watch first counted
-- the ledger (history, not news).
CREATE TABLE budget_alerts (
    budget_line    text        NOT NULL,
    budget_year    int         NOT NULL,
    percent        int         NOT NULL,
    consumed_cents bigint      NOT NULL,
    budget_cents   bigint      NOT NULL,
    crossed_at     timestamptz NOT NULL,
    announced      boolean     NOT NULL,
    PRIMARY KEY (budget_line, budget_year, percent)
);
