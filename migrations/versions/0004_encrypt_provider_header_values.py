"""encrypt every provider header value at rest

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00

llm_providers.headers stays a JSON object (JSONB on PostgreSQL) of header name → value;
each VALUE becomes its AES-GCM ciphertext under MODELDESK_ENCRYPTION_KEY, as api_key is
stored ({"X-Title": "<base64 nonce+tag+ciphertext>"}). Names stay readable. The downgrade
decrypts them again, and refuses (changing nothing) if a value does not decrypt with the
configured key.
"""
from alembic import op
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql
from sqlalchemy_utils.types.encrypted.encrypted_type import InvalidCiphertextError

from webapp.models.types import encryption_engine

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
providers = sa.table(
    'llm_providers',
    sa.column('id', sa.Integer()),
    sa.column('name', sa.String()),
    sa.column('headers', JSON),
)


def _engine():
    return encryption_engine(current_app.config['MODELDESK_ENCRYPTION_KEY'])


def _rows(connection):
    return connection.execute(sa.select(providers.c.id, providers.c.name, providers.c.headers)).all()


def upgrade():
    engine = _engine()
    connection = op.get_bind()
    for provider_id, _name, headers in _rows(connection):
        if not headers:
            continue
        encrypted = {name: engine.encrypt(str(value)) for name, value in dict(headers).items()}
        connection.execute(
            providers.update().where(providers.c.id == provider_id).values(headers=encrypted)
        )


def downgrade():
    engine = _engine()
    connection = op.get_bind()
    decrypted, unreadable = [], []
    for provider_id, name, headers in _rows(connection):
        if not headers:
            continue
        values = {}
        for header, ciphertext in dict(headers).items():
            try:
                values[header] = engine.decrypt(ciphertext)
            except (InvalidCiphertextError, ValueError, TypeError):
                unreadable.append(f'{name} ({header})')
        decrypted.append((provider_id, values))
    if unreadable:
        raise RuntimeError(
            'these header values do not decrypt with MODELDESK_ENCRYPTION_KEY, so they cannot '
            'be stored in plain text again (nothing was changed): ' + ', '.join(unreadable)
        )
    for provider_id, values in decrypted:
        connection.execute(
            providers.update().where(providers.c.id == provider_id).values(headers=values)
        )
