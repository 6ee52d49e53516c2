"""source servers and migration jobs: the mail provider (Gmail, Microsoft 365…) or "other"

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('source_servers', sa.Column('provider', sa.String(length=16), server_default='other',
                                              nullable=False))
    op.add_column('migration_jobs', sa.Column('source_provider', sa.String(length=16), server_default='other',
                                              nullable=False))


def downgrade() -> None:
    op.drop_column('migration_jobs', 'source_provider')
    op.drop_column('source_servers', 'provider')
