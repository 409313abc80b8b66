"""scanning: layers, packages, vulnerability feeds, image results, overrides

Expand only: new tables, and repository_meta.scan_on_push (a column with a default).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 06:16:26.405377
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scan_images',
    sa.Column('digest', sa.String(length=200), nullable=False),
    sa.Column('status', sa.Integer(), server_default=sa.text('1'), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('layers', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('os', sa.String(length=64), server_default=sa.text("''"), nullable=False),
    sa.Column('architecture', sa.String(length=64), server_default=sa.text("''"), nullable=False),
    sa.Column('distribution', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('critical', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('major', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('minor', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('hidden', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('feed_versions', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('scanned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('check_completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_scan_images'))
    )
    op.create_table('scan_overrides',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('scope', sa.String(length=255), server_default=sa.text("''"), nullable=False),
    sa.Column('digest', sa.String(length=200), server_default=sa.text("''"), nullable=False),
    sa.Column('component', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('vuln_id', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('actor', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_overrides'))
    )
    op.create_index('ix_scan_overrides_vuln_id', 'scan_overrides', ['vuln_id'], unique=False)
    op.create_table('vuln_changes',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('package', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vuln_changes'))
    )
    op.create_table('vuln_feeds',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('version', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('etag', sa.Text(), nullable=True),
    sa.Column('last_modified', sa.Text(), nullable=True),
    sa.Column('checksum', sa.String(length=80), nullable=True),
    sa.Column('records', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_vuln_feeds'))
    )
    op.create_table('vulnerabilities',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('summary', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('cvss_score', sa.Float(), nullable=True),
    sa.Column('cvss_vector', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('aliases', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('modified_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vulnerabilities'))
    )
    op.create_table('scan_layers',
    sa.Column('digest', sa.String(length=200), nullable=False),
    sa.Column('indexer_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('distribution', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('whiteouts', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('opaque_dirs', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('package_dbs', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('warnings', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.Column('files', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('size', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
    sa.Column('duration', sa.Float(), server_default=sa.text('0'), nullable=False),
    sa.Column('indexed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], name=op.f('fk_scan_layers_digest_blobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_scan_layers'))
    )
    op.create_table('vuln_advisories',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('feed', sa.String(length=64), nullable=False),
    sa.Column('vuln_id', sa.String(length=128), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('package', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('introduced', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('fixed', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('last_affected', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('severity', sa.String(length=16), server_default=sa.text("''"), nullable=False),
    sa.Column('cvss_score', sa.Float(), nullable=True),
    sa.Column('cvss_vector', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.ForeignKeyConstraint(['feed'], ['vuln_feeds.name'], name=op.f('fk_vuln_advisories_feed_vuln_feeds'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vuln_advisories'))
    )
    op.create_index('ix_vuln_advisories_feed', 'vuln_advisories', ['feed'], unique=False)
    op.create_index('ix_vuln_advisories_namespace_package', 'vuln_advisories', ['namespace', 'package'], unique=False)
    op.create_table('scan_packages',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('layer_digest', sa.String(length=200), nullable=False),
    sa.Column('ecosystem', sa.String(length=16), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('version', sa.Text(), nullable=False),
    sa.Column('source_name', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('source_version', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('arch', sa.String(length=64), server_default=sa.text("''"), nullable=False),
    sa.Column('license', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('location', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('files', postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False),
    sa.ForeignKeyConstraint(['layer_digest'], ['scan_layers.digest'], name=op.f('fk_scan_packages_layer_digest_scan_layers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scan_packages'))
    )
    op.create_index(op.f('ix_scan_packages_layer_digest'), 'scan_packages', ['layer_digest'], unique=False)
    op.create_table('scan_image_packages',
    sa.Column('image_digest', sa.String(length=200), nullable=False),
    sa.Column('package_id', sa.BigInteger(), nullable=False),
    sa.Column('layer_digest', sa.String(length=200), nullable=False),
    sa.Column('layer_index', sa.Integer(), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('match_name', sa.Text(), nullable=False),
    sa.Column('match_version', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['image_digest'], ['scan_images.digest'], name=op.f('fk_scan_image_packages_image_digest_scan_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['package_id'], ['scan_packages.id'], name=op.f('fk_scan_image_packages_package_id_scan_packages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_digest', 'package_id', name=op.f('pk_scan_image_packages'))
    )
    op.create_index('ix_scan_image_packages_match', 'scan_image_packages', ['namespace', 'match_name'], unique=False)
    op.create_index('ix_scan_image_packages_package', 'scan_image_packages', ['package_id'], unique=False)
    op.create_table('scan_image_vulns',
    sa.Column('image_digest', sa.String(length=200), nullable=False),
    sa.Column('package_id', sa.BigInteger(), nullable=False),
    sa.Column('vuln_id', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('fixed_version', sa.Text(), server_default=sa.text("''"), nullable=False),
    sa.Column('band', sa.String(length=16), nullable=False),
    sa.Column('severity', sa.String(length=16), server_default=sa.text("''"), nullable=False),
    sa.Column('cvss_score', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['image_digest'], ['scan_images.digest'], name=op.f('fk_scan_image_vulns_image_digest_scan_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['package_id'], ['scan_packages.id'], name=op.f('fk_scan_image_vulns_package_id_scan_packages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('image_digest', 'package_id', 'vuln_id', name=op.f('pk_scan_image_vulns'))
    )
    op.create_index('ix_scan_image_vulns_vuln_id', 'scan_image_vulns', ['vuln_id'], unique=False)
    op.add_column('repository_meta', sa.Column('scan_on_push', sa.Boolean(), server_default=sa.text('false'), nullable=False))


def downgrade() -> None:
    op.drop_column('repository_meta', 'scan_on_push')
    op.drop_index('ix_scan_image_vulns_vuln_id', table_name='scan_image_vulns')
    op.drop_table('scan_image_vulns')
    op.drop_index('ix_scan_image_packages_package', table_name='scan_image_packages')
    op.drop_index('ix_scan_image_packages_match', table_name='scan_image_packages')
    op.drop_table('scan_image_packages')
    op.drop_index(op.f('ix_scan_packages_layer_digest'), table_name='scan_packages')
    op.drop_table('scan_packages')
    op.drop_index('ix_vuln_advisories_namespace_package', table_name='vuln_advisories')
    op.drop_index('ix_vuln_advisories_feed', table_name='vuln_advisories')
    op.drop_table('vuln_advisories')
    op.drop_table('scan_layers')
    op.drop_table('vulnerabilities')
    op.drop_table('vuln_feeds')
    op.drop_table('vuln_changes')
    op.drop_index('ix_scan_overrides_vuln_id', table_name='scan_overrides')
    op.drop_table('scan_overrides')
    op.drop_table('scan_images')
