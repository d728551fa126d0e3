"""What every app here answers: the token a request sent, back through the
database, with the server process that answered it and this process's pid.
A connection shared by two workers interleaves their queries: one reads the
other's token, or the server's pid is the same from two workers."""
import os

# SQLAlchemy's text() form; psycopg2's own is RAW_QUERY. The short sleep
# keeps a query on its socket long enough for another to come in between.
QUERY = ("SELECT CAST(:token AS text) || ' ' || pg_backend_pid() || ' ' "
         "|| (SELECT count(*) FROM pg_sleep(0.002))")
RAW_QUERY = QUERY.replace(":token", "%(token)s")


def answer(row: str) -> dict:
    token, backend, _ = row.split()
    return {"token": token, "backend": int(backend), "pid": os.getpid()}
