"""provider requires_api_key; the last failed connection test on models

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 14:10:00

llm_providers.requires_api_key: false for servers that take no key (the mock, Ollama-style
local servers). Existing rows get true (the server default), then the seeded local ones are
set to false by name, so an upgraded install does not suddenly mark its mock models unusable.

llm_models.connection_failed_at / connection_error: the last connection test's failure,
cleared by a success; until now a failure only cleared connection_tested_at.
"""
from alembic import op
import sqlalchemy as sa

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# The seeds' keyless providers (seeds/llm.py), as they were named when this was written.
KEYLESS_SEEDED = ('Mock (Local)', 'Ollama (Local)', 'Custom')


# Plain ADD COLUMN, no batch: a batch rebuild on SQLite drops the old table, and with foreign
# keys on that deletes its rows' dependents (ON DELETE CASCADE / SET NULL) on the way.
def upgrade():
    op.add_column(
        'llm_providers',
        sa.Column('requires_api_key', sa.Boolean(), server_default=sa.true(), nullable=False),
    )
    providers = sa.table('llm_providers', sa.column('name'), sa.column('requires_api_key'))
    op.execute(
        providers.update()
        .where(providers.c.name.in_(KEYLESS_SEEDED))
        .values(requires_api_key=False)
    )
    op.add_column(
        'llm_models', sa.Column('connection_failed_at', sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column('llm_models', sa.Column('connection_error', sa.String(length=500), nullable=True))


def downgrade():
    # DROP COLUMN in place (SQLite 3.35+), for the same reason as above.
    op.drop_column('llm_models', 'connection_error')
    op.drop_column('llm_models', 'connection_failed_at')
    op.drop_column('llm_providers', 'requires_api_key')
