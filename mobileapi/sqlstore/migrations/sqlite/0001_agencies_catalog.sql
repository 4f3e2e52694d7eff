CREATE TABLE api_placeholder_1 (x INTEGER);
