"""jobs: queue, logs, workers, crons, pruning, usage

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-30 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('jobs',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('parameters', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='waiting', nullable=False),
    sa.Column('worker_id', sa.String(length=64), nullable=True),
    sa.Column('attempt', sa.Integer(), server_default='0', nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='1', nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('deadline', sa.Float(), nullable=True),
    sa.Column('stop_timeout', sa.Float(), server_default='30', nullable=False),
    sa.Column('progress', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cron_action', sa.String(length=64), nullable=True),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dedupe_key', sa.String(length=300), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    op.create_index('ix_jobs_claim', 'jobs', ['action', 'run_after'], unique=False,
                    postgresql_where=sa.text("status IN ('waiting', 'worker_dead')"))
    op.create_index('ix_jobs_worker', 'jobs', ['worker_id'], unique=False,
                    postgresql_where=sa.text("status IN ('running', 'cancel_request')"))
    op.create_index('ix_jobs_created_at', 'jobs', ['created_at'], unique=False)
    op.create_index('uq_jobs_dedupe_waiting', 'jobs', ['dedupe_key'], unique=True,
                    postgresql_where=sa.text("status = 'waiting' AND dedupe_key IS NOT NULL"))
    op.create_table('job_logs',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('job_id', sa.UUID(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_logs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_logs'))
    )
    op.create_index('ix_job_logs_job', 'job_logs', ['job_id', 'line'], unique=False)
    op.create_table('job_workers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('capacity', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='running', nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_workers'))
    )
    op.create_table('job_crons',
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('schedule', sa.String(length=255), nullable=False),
    sa.Column('parameters', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('max_attempts', sa.Integer(), server_default='1', nullable=False),
    sa.Column('deadline', sa.Float(), nullable=True),
    sa.Column('stop_timeout', sa.Float(), server_default='30', nullable=False),
    sa.Column('next_run', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_job_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('action', name=op.f('pk_job_crons'))
    )
    op.create_table('pruning_policies',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('repository_id', sa.BigInteger(), nullable=False),
    sa.Column('enabled', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('keep_newest', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_pruning_policies_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pruning_policies'))
    )
    op.create_index(op.f('ix_pruning_policies_repository_id'), 'pruning_policies', ['repository_id'], unique=False)
    op.create_table('repository_pruning',
    sa.Column('repository_id', sa.BigInteger(), nullable=False),
    sa.Column('tag_limit', sa.Integer(), nullable=True),
    sa.Column('immutable', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_repository_pruning_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', name=op.f('pk_repository_pruning'))
    )
    op.create_table('tag_pulls',
    sa.Column('repository_id', sa.BigInteger(), nullable=False),
    sa.Column('tag', sa.String(length=128, collation='C'), nullable=False),
    sa.Column('pulled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_tag_pulls_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repository_id', 'tag', name=op.f('pk_tag_pulls'))
    )
    op.create_table('storage_usage',
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255, collation='C'), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('unique_bytes', sa.BigInteger(), nullable=False),
    sa.Column('blobs', sa.BigInteger(), nullable=False),
    sa.Column('manifests', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('scope', 'name', name=op.f('pk_storage_usage'))
    )


def downgrade() -> None:
    op.drop_table('storage_usage')
    op.drop_table('tag_pulls')
    op.drop_table('repository_pruning')
    op.drop_index(op.f('ix_pruning_policies_repository_id'), table_name='pruning_policies')
    op.drop_table('pruning_policies')
    op.drop_table('job_crons')
    op.drop_table('job_workers')
    op.drop_index('ix_job_logs_job', table_name='job_logs')
    op.drop_table('job_logs')
    op.drop_index('uq_jobs_dedupe_waiting', table_name='jobs')
    op.drop_index('ix_jobs_created_at', table_name='jobs')
    op.drop_index('ix_jobs_worker', table_name='jobs')
    op.drop_index('ix_jobs_claim', table_name='jobs')
    op.drop_table('jobs')
