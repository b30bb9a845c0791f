"""Usage: the gateway's counts per project and hour, and each ended training once

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('usage_counts',
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('project', sa.String(length=253), nullable=False, comment="The CustomVisionProject's name."),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False, comment="The hour's start."),
    sa.Column('predictions_stored', sa.BigInteger(), nullable=False),
    sa.Column('predictions_not_stored', sa.BigInteger(), nullable=False),
    sa.Column('images_stored', sa.BigInteger(), nullable=False),
    sa.Column('image_bytes', sa.BigInteger(), nullable=False),
    sa.Column('exports', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('namespace', 'project', 'hour', name=op.f('pk_usage_counts'))
    )
    with op.batch_alter_table('usage_counts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_counts_hour'), ['hour'], unique=False)

    op.create_table('training_usage',
    sa.Column('iteration_uid', sa.String(length=36), nullable=False),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('project', sa.String(length=253), nullable=False, comment="The CustomVisionProject's name."),
    sa.Column('iteration', sa.String(length=253), nullable=False),
    sa.Column('finished', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('gpus', sa.Integer(), nullable=False),
    sa.Column('advanced', sa.Boolean(), nullable=False,
              comment="An Advanced training: counted against the namespace's Advanced budget."),
    sa.PrimaryKeyConstraint('iteration_uid', name=op.f('pk_training_usage'))
    )
    with op.batch_alter_table('training_usage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_usage_finished'), ['finished'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('training_usage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_usage_finished'))

    op.drop_table('training_usage')
    with op.batch_alter_table('usage_counts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_counts_hour'))

    op.drop_table('usage_counts')
