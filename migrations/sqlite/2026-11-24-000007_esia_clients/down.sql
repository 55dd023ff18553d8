DROP TABLE esia_clients;
