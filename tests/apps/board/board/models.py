"""The schema, in SQLAlchemy Core; Alembic (migrations/) creates it."""

import sqlalchemy as sa

metadata = sa.MetaData()

entry = sa.Table(
    "entry", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.String(200), nullable=False),
)
