ALTER TABLE clients DROP COLUMN min_acr;
