-- Every refresh token row is updated once, when it is spent (used_at). No index covers
-- used_at, so that update can stay on the row's page without new index entries (a HOT
-- update) if the page has room: leave half of each new page free for it.
ALTER TABLE refresh_tokens SET (fillfactor = 50);
