-- The blob sweeper asks, a batch of keys at a time, which blobs a file
-- record still names: without this index each batch scans every file.
CREATE INDEX api_application_files_blob_key ON api_application_files (blob_key);
