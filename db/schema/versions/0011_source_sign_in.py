"""source servers: a sign-in method (password, a Microsoft 365 app, a Google Workspace service
account) and its secrets, encrypted; migration jobs: the sign-in method of their source

Revision ID: 0011
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('source_servers', sa.Column('auth', sa.String(length=16), server_default='password',
                                              nullable=False))
    op.add_column('source_servers', sa.Column('auth_key_id', sa.String(length=16), nullable=True))
    op.add_column('source_servers', sa.Column('auth_ciphertext', sa.LargeBinary(), nullable=True))
    op.add_column('migration_jobs', sa.Column('source_auth', sa.String(length=16), server_default='password',
                                              nullable=False))


def downgrade() -> None:
    op.drop_column('migration_jobs', 'source_auth')
    op.drop_column('source_servers', 'auth_ciphertext')
    op.drop_column('source_servers', 'auth_key_id')
    op.drop_column('source_servers', 'auth')
