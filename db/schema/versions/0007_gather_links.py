"""credential links: gather_links and gather_submissions

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('gather_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('token_key_id', sa.String(length=16), nullable=False),
    sa.Column('token_ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('source_server_id', sa.Integer(), nullable=True),
    sa.Column('source_name', sa.String(length=64), nullable=False),
    sa.Column('source_host', sa.String(length=253), nullable=False),
    sa.Column('source_port', sa.Integer(), nullable=False),
    sa.Column('source_security', sa.String(length=16), nullable=False),
    sa.Column('channel_id', sa.String(length=32), nullable=False),
    sa.Column('message_ts', sa.String(length=32), nullable=True),
    sa.Column('created_by', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=32), nullable=True),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['source_server_id'], ['source_servers.id'],
                            name=op.f('fk_gather_links_source_server_id_source_servers'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gather_links')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_gather_links_token_hash')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_gather_links_idempotency_key'))
    )
    op.create_table('gather_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('new_address', sa.String(length=320), nullable=True),
    sa.Column('key_id', sa.String(length=16), nullable=True),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('credentials_purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['link_id'], ['gather_links.id'],
                            name=op.f('fk_gather_submissions_link_id_gather_links'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['job_id'], ['migration_jobs.id'],
                            name=op.f('fk_gather_submissions_job_id_migration_jobs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gather_submissions'))
    )
    op.create_index(op.f('ix_gather_submissions_link_id'), 'gather_submissions', ['link_id'], unique=False)
    op.create_index('uq_gather_submissions_link_email', 'gather_submissions', ['link_id', sa.text('lower(email)')],
                    unique=True)


def downgrade() -> None:
    op.drop_index('uq_gather_submissions_link_email', table_name='gather_submissions')
    op.drop_index(op.f('ix_gather_submissions_link_id'), table_name='gather_submissions')
    op.drop_table('gather_submissions')
    op.drop_table('gather_links')
