-- Issue 12 (users' own families): each materializations row records the feature families
-- the run used, with the sha256 of each family's SQL (store/registry.py Registry.family_hash),
-- and whether the run had every family of its store's registry. refresh() recomputes from
-- scratch when a family's definition changed since the snapshot, or a family was added or
-- removed. NULL for runs recorded before this step (refresh then recomputes once).
ALTER TABLE materializations ADD COLUMN families TEXT CHECK (families IS NULL OR json_valid(families));
ALTER TABLE materializations ADD COLUMN all_families INTEGER;
