"""credential links: the destination domains the admin chose, and a proven destination password

Revision ID: 0010
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Links made before this revision name no domain: their form takes no new address.
    op.add_column('gather_links', sa.Column('dest_domains', sa.String(length=2600), server_default='',
                                            nullable=False))
    op.add_column('gather_submissions', sa.Column('dest_proven', sa.String(length=320), nullable=True))


def downgrade() -> None:
    op.drop_column('gather_submissions', 'dest_proven')
    op.drop_column('gather_links', 'dest_domains')
