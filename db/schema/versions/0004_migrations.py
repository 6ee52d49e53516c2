"""migrations tables

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('source_servers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=253), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('security', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_source_servers')),
    sa.UniqueConstraint('name', name=op.f('uq_source_servers_name'))
    )
    op.create_table('migration_batches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_migration_batches')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_migration_batches_idempotency_key'))
    )
    op.create_table('migration_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=True),
    sa.Column('source_server_id', sa.Integer(), nullable=True),
    sa.Column('source_host', sa.String(length=253), nullable=False),
    sa.Column('source_port', sa.Integer(), nullable=False),
    sa.Column('source_security', sa.String(length=16), nullable=False),
    sa.Column('source_email', sa.String(length=320), nullable=False),
    sa.Column('dest_email', sa.String(length=320), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=True),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('dry_run', sa.Boolean(), nullable=False),
    sa.Column('exclude', sa.Text(), nullable=True),
    sa.Column('max_age_days', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('msgs_done', sa.Integer(), nullable=False),
    sa.Column('msgs_total', sa.Integer(), nullable=False),
    sa.Column('bytes_done', sa.BigInteger(), nullable=False),
    sa.Column('bytes_total', sa.BigInteger(), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('verdict', sa.Text(), nullable=True),
    sa.Column('summary', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('thread_ts', sa.String(length=32), nullable=True),
    sa.Column('status_ts', sa.String(length=32), nullable=True),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('credentials_purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['migration_batches.id'],
                            name=op.f('fk_migration_jobs_batch_id_migration_batches'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['source_server_id'], ['source_servers.id'],
                            name=op.f('fk_migration_jobs_source_server_id_source_servers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_migration_jobs')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_migration_jobs_idempotency_key'))
    )
    op.create_index('ix_migration_jobs_status', 'migration_jobs', ['status'], unique=False)
    op.create_index(op.f('ix_migration_jobs_batch_id'), 'migration_jobs', ['batch_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_migration_jobs_batch_id'), table_name='migration_jobs')
    op.drop_index('ix_migration_jobs_status', table_name='migration_jobs')
    op.drop_table('migration_jobs')
    op.drop_table('migration_batches')
    op.drop_table('source_servers')
