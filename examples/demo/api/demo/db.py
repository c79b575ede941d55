"""PostgreSQL connection settings from the environment slipway's env files provide."""

import os

import psycopg2


def connect():
    return psycopg2.connect(
        host=os.environ.get("DATABASE_HOST", "db"),
        dbname=os.environ["DATABASE_NAME"],
        user=os.environ["DATABASE_USER"],
        password=os.environ["DATABASE_PASSWORD"],
        connect_timeout=3,
    )
