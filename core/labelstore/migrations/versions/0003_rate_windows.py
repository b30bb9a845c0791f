"""Rate limits: one shared counter per namespace and kind of call, for every gateway replica

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('rate_windows',
    sa.Column('key', sa.String(length=128), nullable=False, comment='<namespace>/<kind of call>/<window seconds>.'),
    sa.Column('started', sa.BigInteger(), nullable=False, comment='When the window began, epoch seconds.'),
    sa.Column('calls', sa.Integer(), nullable=False, comment='Calls counted in that window.'),
    sa.Column('ends', sa.BigInteger(), nullable=False, comment='When the window ends, epoch seconds; old rows are swept.'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_windows'))
    )


def downgrade() -> None:
    op.drop_table('rate_windows')
