DROP TABLE client_levels;
DROP TABLE verifications;
DROP TABLE org_members;
DROP TABLE organizations;
DROP TABLE person_history;
DROP TABLE person_items;
DROP TABLE persons;
