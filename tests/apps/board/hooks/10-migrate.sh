#!/bin/sh
# Before every start: the database (in /app/.data, next to the code) at the
# latest migration. Importing the app writes there already.
exec alembic -c /app/migrations/alembic.ini upgrade head
