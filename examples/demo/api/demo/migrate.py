"""The release command: create the tables this version needs (idempotent)."""

from .db import connect

with connect() as connection, connection.cursor() as cursor:
    cursor.execute("CREATE TABLE IF NOT EXISTS items (id serial PRIMARY KEY, name text NOT NULL, version text NOT NULL)")
    cursor.execute("CREATE TABLE IF NOT EXISTS worker_beats (id serial PRIMARY KEY, version text NOT NULL, at timestamptz DEFAULT now())")
print("migrated")
