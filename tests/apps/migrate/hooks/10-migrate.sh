#!/bin/sh
# Before every start: bring the database to the latest migration (a no-op
# when it is there already). FLASK_APP is set to the app the server serves.
exec flask db upgrade
