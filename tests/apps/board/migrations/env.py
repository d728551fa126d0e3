"""Runs the migrations against the app's own database. Importing the app
package writes next to its code (.data/), as the real app does."""

import sqlalchemy as sa
from alembic import context
from board import DATABASE_URL
from board.models import metadata

with sa.create_engine(DATABASE_URL).connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
