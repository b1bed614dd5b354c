-- Migration 0005: a rejected offer is recorded once (issue 11, item 4).
--
-- A rejection of an add_* call, a bulk call or load_history (load_id NULL) is
-- identified by what was offered and why it was refused: (shop_id, kind,
-- reason, payload). Offering the same bad record again (re-running the same
-- bulk call, repeating the same add_*) stores nothing twice: the insert
-- (sql/ingest.sql insert_rejected_event) does nothing when that key is
-- already stored, and the row keeps the first received_at. The call's
-- returned counts still count every offer (accepted + rejected + duplicates =
-- offered). Rejections of file loads (load_id NOT NULL) keep their own key,
-- (load_id, source_row) from 0002: one row per rejected input row.
--
-- Rows stored before this step may repeat a key: every repeat but the first
-- (lowest id, the earliest received) is removed before the index is built.
-- They are exact copies (same shop, kind, payload and reason); only their
-- received_at differed.

DELETE FROM rejected_events
WHERE load_id IS NULL
  AND id NOT IN (SELECT min(id) FROM rejected_events
                 WHERE load_id IS NULL
                 GROUP BY shop_id, kind, reason, payload);

CREATE UNIQUE INDEX rejected_events_offer ON rejected_events (shop_id, kind, reason, payload)
    WHERE load_id IS NULL;
