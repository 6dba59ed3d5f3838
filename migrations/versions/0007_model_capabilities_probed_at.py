"""when a model's capabilities were last probed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:30:00

llm_models.capabilities_probed_at: set by `flask models probe` and the model page's
"Probe capabilities" (whatever the probes found); NULL = never probed. Other branches add
0005 and 0006; the merge re-chains this one after them.
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('llm_models', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('capabilities_probed_at', sa.DateTime(timezone=True), nullable=True)
        )


def downgrade():
    with op.batch_alter_table('llm_models', schema=None) as batch_op:
        batch_op.drop_column('capabilities_probed_at')
