-- A client may require a minimum sign-in strength (acr URN); a weaker request is stepped up.
ALTER TABLE clients ADD COLUMN min_acr TEXT;
