"""migration jobs: automatic retries after a server could not be reached

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('migration_jobs', sa.Column('retries', sa.Integer(), server_default='0', nullable=False))
    op.add_column('migration_jobs', sa.Column('retry_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column('migration_jobs', 'retry_at')
    op.drop_column('migration_jobs', 'retries')
