DROP TABLE contact_index;
DROP TABLE signin_state;
