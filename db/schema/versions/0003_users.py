"""users: room for in-place updates of the nightly sync

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The nightly sync touches every row (last_seen). Free space in each page lets PostgreSQL
    # update rows in place (HOT), without rewriting the address indexes for each one.
    op.execute("ALTER TABLE mailboxes SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE mailboxes RESET (fillfactor)")
