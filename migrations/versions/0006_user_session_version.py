"""users.session_version: sign-out and a new password revoke earlier sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:30:00

A session names its user as "<id>:<session_version>"; bumping the version refuses every
cookie issued before. Existing users start at 0 (sessions from before this revision carry
no version and are refused once: everyone signs in again).
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('session_version', sa.Integer(), server_default='0', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
