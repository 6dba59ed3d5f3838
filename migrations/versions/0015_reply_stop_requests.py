"""chat_messages.stop_requested_at: Stop pressed for a reply another process is writing

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 16:10:00

A reply runs in the process that claimed it, whoever follows it. Stop pressed in a page served
by another process sets this column (and says so on the reply bus when there is one); the
process writing the reply sees it and stops the reply.
"""
from alembic import op
import sqlalchemy as sa

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


# Plain ADD COLUMN, no batch (see 0013: a batch rebuild on SQLite cascades to dependents).
def upgrade():
    op.add_column(
        'chat_messages', sa.Column('stop_requested_at', sa.DateTime(timezone=True), nullable=True)
    )


def downgrade():
    op.drop_column('chat_messages', 'stop_requested_at')
