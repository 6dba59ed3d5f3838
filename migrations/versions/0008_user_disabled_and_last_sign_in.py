"""users.disabled and users.last_sign_in_at: the admin Users page

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 11:00:00

A disabled user cannot sign in (their sessions are ended when they are disabled); existing
users start enabled. last_sign_in_at stays empty until the user's next sign-in.
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # A literal default ('0' is false on both databases): an expression would make SQLite's
    # batch mode rebuild the table, and dropping the old users table cascades to conversations.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('disabled', sa.Boolean(), server_default='0', nullable=False)
        )
        batch_op.add_column(sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('last_sign_in_at')
        batch_op.drop_column('disabled')
