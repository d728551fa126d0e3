"""Runs the migrations against the app's own database (Flask-Migrate loads
this inside the app context)."""

from alembic import context
from flask import current_app

db = current_app.extensions["migrate"].db

with db.engine.connect() as connection:
    context.configure(connection=connection, target_metadata=db.metadata)
    with context.begin_transaction():
        context.run_migrations()
