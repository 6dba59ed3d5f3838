"""conversation fit_history: leave the oldest turns out when the history no longer fits

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 16:00:00

conversations.fit_history: true (the server default, so existing conversations get it too)
leaves a request's oldest whole turns out until the prompt fits the model's window; false
refuses the message as PROMPT_TOO_LONG instead.
"""
from alembic import op
import sqlalchemy as sa

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


# Plain ADD COLUMN, no batch: a batch rebuild on SQLite drops the old table, which deletes its
# rows' dependents (ON DELETE CASCADE) and the search triggers of 0012 on the way.
def upgrade():
    op.add_column(
        'conversations',
        sa.Column('fit_history', sa.Boolean(), server_default=sa.true(), nullable=False),
    )


def downgrade():
    # DROP COLUMN in place (SQLite 3.35+), for the same reason as above.
    op.drop_column('conversations', 'fit_history')
