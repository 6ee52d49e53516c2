"""migration jobs: the runner's lease, a cancel that is never lost, the temporary app
password kept (encrypted) until it is deleted, one running job per destination mailbox

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('migration_jobs', sa.Column('lease', sa.String(length=36), nullable=True))
    op.add_column('migration_jobs', sa.Column('cancel_requested_by', sa.String(length=32), nullable=True))
    op.add_column('migration_jobs', sa.Column('app_password_key_id', sa.String(length=16), nullable=True))
    op.add_column('migration_jobs', sa.Column('app_password', sa.LargeBinary(), nullable=True))
    # Never two imapsyncs into one mailbox: at most one running job per destination.
    op.create_index('uq_migration_jobs_running_dest', 'migration_jobs', [sa.text('lower(dest_email)')],
                    unique=True, postgresql_where=sa.text("status = 'running'"))


def downgrade() -> None:
    op.drop_index('uq_migration_jobs_running_dest', table_name='migration_jobs')
    for column in ('app_password', 'app_password_key_id', 'cancel_requested_by', 'lease'):
        op.drop_column('migration_jobs', column)
