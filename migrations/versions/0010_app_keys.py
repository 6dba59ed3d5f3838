"""app_keys: the gateway's keys for other apps (hash, prefix, scope, limits, expiry)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 12:40:00

Only a sha256 of each secret is stored; `prefix` tells keys apart on the page and the CLI.
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'app_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=32), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('model_keys', sa.JSON(), nullable=True),
        sa.Column('rpm', sa.Integer(), nullable=True),
        sa.Column('tpm', sa.Integer(), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_by', sa.String(length=320), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('rpm IS NULL OR rpm > 0', name=op.f('ck_app_keys_rpm_positive')),
        sa.CheckConstraint('tpm IS NULL OR tpm > 0', name=op.f('ck_app_keys_tpm_positive')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_app_keys')),
        sa.UniqueConstraint('name', name=op.f('uq_app_keys_name')),
        sa.UniqueConstraint('secret_hash', name=op.f('uq_app_keys_secret_hash')),
    )


def downgrade():
    op.drop_table('app_keys')
