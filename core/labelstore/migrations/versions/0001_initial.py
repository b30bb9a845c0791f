"""The label store: projects, tags, images, image tags, regions, metadata, stored predictions

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('projects',
    sa.Column('id', sa.String(length=36), nullable=False, comment="The CustomVisionProject's uid."),
    sa.Column('namespace', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('bucket', sa.String(length=63), nullable=False),
    sa.Column('prefix', sa.String(length=512), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('labels_version', sa.Integer(), nullable=False, comment='Moves with every change of labels.'),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dirty_since', sa.DateTime(timezone=True), nullable=True, comment='First change not yet exported.'),
    sa.Column('exported_version', sa.Integer(), nullable=False),
    sa.Column('manifest_etag', sa.String(length=128), nullable=True, comment='ETag of the manifest this store wrote.'),
    sa.Column('export_holder', sa.String(length=64), nullable=True, comment='Who is exporting now (a lease).'),
    sa.Column('export_lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('export_conflict', sa.Text(), nullable=True, comment='Why exports stopped: a manifest written by someone else.'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects'))
    )
    op.create_table('images',
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False, comment='Derived from sha256: one image per content.'),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_images_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'id', name=op.f('pk_images'))
    )
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_images_project_id_created_id'), ['project_id', 'created', 'id'], unique=False)

    op.create_table('predictions',
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('iteration_id', sa.String(length=36), nullable=False),
    sa.Column('published_name', sa.String(length=256), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('application', sa.String(length=64), nullable=True),
    sa.Column('predictions', sa.JSON(), nullable=False, comment='[{tag_id, tag_name, probability}], highest first.'),
    sa.Column('object_key', sa.String(length=1024), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_predictions_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'id', name=op.f('pk_predictions'))
    )
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_predictions_project_id_created'), ['project_id', 'created'], unique=False)

    op.create_table('tags',
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False, comment='Regular, Negative or GeneralProduct.'),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_tags_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'id', name=op.f('pk_tags'))
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tags_project_id_name'), ['project_id', 'name'], unique=True)

    op.create_table('image_metadata',
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('image_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.ForeignKeyConstraint(['project_id', 'image_id'], ['images.project_id', 'images.id'], name=op.f('fk_image_metadata_project_id_image_id_images'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'image_id', 'key', name=op.f('pk_image_metadata'))
    )
    op.create_table('image_tags',
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('image_id', sa.String(length=36), nullable=False),
    sa.Column('tag_id', sa.String(length=36), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id', 'image_id'], ['images.project_id', 'images.id'], name=op.f('fk_image_tags_project_id_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id', 'tag_id'], ['tags.project_id', 'tags.id'], name=op.f('fk_image_tags_project_id_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'image_id', 'tag_id', name=op.f('pk_image_tags'))
    )
    with op.batch_alter_table('image_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_image_tags_project_id_tag_id_image_id'), ['project_id', 'tag_id', 'image_id'], unique=False)

    op.create_table('regions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('image_id', sa.String(length=36), nullable=False),
    sa.Column('tag_id', sa.String(length=36), nullable=False),
    sa.Column('left', sa.Float(), nullable=False),
    sa.Column('top', sa.Float(), nullable=False),
    sa.Column('width', sa.Float(), nullable=False),
    sa.Column('height', sa.Float(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id', 'image_id'], ['images.project_id', 'images.id'], name=op.f('fk_regions_project_id_image_id_images'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id', 'tag_id'], ['tags.project_id', 'tags.id'], name=op.f('fk_regions_project_id_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_regions'))
    )
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_regions_project_id_image_id'), ['project_id', 'image_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('regions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_regions_project_id_image_id'))

    op.drop_table('regions')
    with op.batch_alter_table('image_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_image_tags_project_id_tag_id_image_id'))

    op.drop_table('image_tags')
    op.drop_table('image_metadata')
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tags_project_id_name'))

    op.drop_table('tags')
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_predictions_project_id_created'))

    op.drop_table('predictions')
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_images_project_id_created_id'))

    op.drop_table('images')
    op.drop_table('projects')
