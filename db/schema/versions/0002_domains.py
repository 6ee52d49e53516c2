"""domains: health and alert state

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('domains', sa.Column('healthy', sa.Boolean(), nullable=True))
    op.add_column('domains', sa.Column('alert_state', postgresql.JSONB(astext_type=sa.Text()), nullable=True))


def downgrade() -> None:
    op.drop_column('domains', 'alert_state')
    op.drop_column('domains', 'healthy')
