"""a migration's life under faults: app passwords owned by the run that made them (and
tombstones that outlive a deleted job), interruptions counted since the admin's last
action, deletions retried, Create jobs' mailboxes whose password was not shown yet

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('migration_jobs', sa.Column('app_password_lease', sa.String(length=36), nullable=True))
    op.add_column('migration_jobs', sa.Column('interruptions', sa.Integer(), server_default='0', nullable=False))
    op.create_table(
        'app_password_tombstones',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('dest_email', sa.String(length=320), nullable=False),
        sa.Column('key_id', sa.String(length=16), nullable=False),
        sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column('tries', sa.Integer(), server_default='0', nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
    )
    op.add_column('deletion_queue', sa.Column('tries', sa.Integer(), server_default='0', nullable=False))
    op.add_column('gather_submissions', sa.Column('mailbox_pending', sa.String(length=320), nullable=True))


def downgrade() -> None:
    op.drop_column('gather_submissions', 'mailbox_pending')
    op.drop_column('deletion_queue', 'tries')
    op.drop_table('app_password_tombstones')
    op.drop_column('migration_jobs', 'interruptions')
    op.drop_column('migration_jobs', 'app_password_lease')
