"""foundation tables

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Substring search over mailbox addresses (user list) uses trigram indexes.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor_id', sa.String(length=32), nullable=False),
    sa.Column('actor_name', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=512), nullable=False),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_actor_id', 'audit_log', ['actor_id'], unique=False)
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_table('deletion_queue',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=320), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=32), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_by', sa.String(length=32), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('channel_id', sa.String(length=32), nullable=True),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deletion_queue'))
    )
    op.create_index('ix_deletion_queue_due', 'deletion_queue', ['due_at'], unique=False,
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index('uq_deletion_queue_pending_target', 'deletion_queue', ['kind', 'target'], unique=True,
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_table('domains',
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('unicode_name', sa.String(length=253), nullable=False),
    sa.Column('is_shared', sa.Boolean(), nullable=False),
    sa.Column('allow_account_reset', sa.Boolean(), nullable=False),
    sa.Column('symbolic_subaddressing', sa.Boolean(), nullable=False),
    sa.Column('passes_mx', sa.Boolean(), nullable=False),
    sa.Column('passes_spf', sa.Boolean(), nullable=False),
    sa.Column('passes_dkim', sa.Boolean(), nullable=False),
    sa.Column('passes_dmarc', sa.Boolean(), nullable=False),
    sa.Column('check', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('last_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_domains'))
    )
    op.create_table('mailboxes',
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('local_part', sa.String(length=64), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('details_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('address', name=op.f('pk_mailboxes'))
    )
    op.create_index('ix_mailboxes_address_trgm', 'mailboxes', ['address'], unique=False, postgresql_using='gin',
                    postgresql_ops={'address': 'gin_trgm_ops'})
    op.create_index('ix_mailboxes_domain_address', 'mailboxes', ['domain', 'address'], unique=False)
    op.create_table('sync_state',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_ok_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_sync_state'))
    )


def downgrade() -> None:
    op.drop_table('sync_state')
    op.drop_index('ix_mailboxes_domain_address', table_name='mailboxes')
    op.drop_index('ix_mailboxes_address_trgm', table_name='mailboxes', postgresql_using='gin',
                  postgresql_ops={'address': 'gin_trgm_ops'})
    op.drop_table('mailboxes')
    op.drop_table('domains')
    op.drop_index('uq_deletion_queue_pending_target', table_name='deletion_queue',
                  postgresql_where=sa.text("status = 'pending'"))
    op.drop_index('ix_deletion_queue_due', table_name='deletion_queue', postgresql_where=sa.text("status = 'pending'"))
    op.drop_table('deletion_queue')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_index('ix_audit_log_actor_id', table_name='audit_log')
    op.drop_table('audit_log')
