CREATE TABLE api_placeholder_2 (x INTEGER);
