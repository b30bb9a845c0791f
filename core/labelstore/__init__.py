"""The label store: a project's images, tags, regions, metadata and stored predictions in a database (SQLite in
local mode, PostgreSQL on a cluster), with image bytes in S3 and the dataset manifest exported from it
(docs/storage.md)."""
