"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 18:36:10.425663
"""

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('genres',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_key', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_genres')),
    sa.UniqueConstraint('name_key', name=op.f('uq_genres_name_key'))
    )
    op.create_table('libraries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_libraries'))
    )
    op.create_table('people',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('name_key', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_people')),
    sa.UniqueConstraint('name_key', name=op.f('uq_people_name_key'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('must_reset', sa.Boolean(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("role IN ('admin', 'user', 'viewer')", name=op.f('ck_users_role')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('activity_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_email', sa.String(length=254), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('entity_type', sa.String(length=32), nullable=True),
    sa.Column('entity_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('reason', sa.String(length=255), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_activity_log_actor_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity_log'))
    )
    with op.batch_alter_table('activity_log', schema=None) as batch_op:
        batch_op.create_index('ix_activity_log_action', ['action', 'created_at'], unique=False)
        batch_op.create_index('ix_activity_log_actor', ['actor_id', 'created_at'], unique=False)
        batch_op.create_index('ix_activity_log_created', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_activity_log_entity', ['entity_type', 'entity_id'], unique=False)

    op.create_table('app_integrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('secrets_encrypted', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('last_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['updated_by'], ['users.id'], name=op.f('fk_app_integrations_updated_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_integrations')),
    sa.UniqueConstraint('provider', name=op.f('uq_app_integrations_provider'))
    )
    op.create_table('feature_flags',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('description', sa.String(length=255), nullable=True),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['updated_by'], ['users.id'], name=op.f('fk_feature_flags_updated_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_feature_flags'))
    )
    op.create_table('invites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.CheckConstraint("role IN ('admin', 'user', 'viewer')", name=op.f('ck_invites_role')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_invites_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['used_by'], ['users.id'], name=op.f('fk_invites_used_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invites')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_invites_token_hash'))
    )
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invites_email'), ['email'], unique=False)

    op.create_table('media',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('library_id', sa.Integer(), nullable=False),
    sa.Column('space_id', sa.Integer(), nullable=True),
    sa.Column('media_type', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('sort_title', sa.String(length=255), nullable=False),
    sa.Column('original_title', sa.String(length=500), nullable=True),
    sa.Column('year', sa.SmallInteger(), nullable=True),
    sa.Column('release_date', sa.Date(), nullable=True),
    sa.Column('formats', sa.JSON(), nullable=False),
    sa.Column('overview', sa.Text(), nullable=True),
    sa.Column('runtime', sa.Integer(), nullable=True),
    sa.Column('rating', sa.Numeric(precision=4, scale=2, asdecimal=False), nullable=True),
    sa.Column('isbn13', sa.String(length=13), nullable=True),
    sa.Column('ean13', sa.String(length=13), nullable=True),
    sa.Column('asin', sa.String(length=10), nullable=True),
    sa.Column('tmdb_id', sa.Integer(), nullable=True),
    sa.Column('tmdb_media_type', sa.String(length=8), nullable=True),
    sa.Column('plex_guid', sa.String(length=255), nullable=True),
    sa.Column('type_details', sa.JSON(), nullable=False),
    sa.Column('signed_by', sa.String(length=255), nullable=True),
    sa.Column('signed_role', sa.String(length=16), nullable=True),
    sa.Column('signed_on', sa.Date(), nullable=True),
    sa.Column('signed_at', sa.String(length=255), nullable=True),
    sa.Column('signed_proof_key', sa.String(length=255), nullable=True),
    sa.Column('location', sa.String(length=255), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('copies', sa.Integer(), nullable=False),
    sa.Column('cover_key', sa.String(length=255), nullable=True),
    sa.Column('import_source', sa.String(length=32), nullable=True),
    sa.Column('added_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("media_type IN ('movie', 'tv_series', 'tv_episode', 'book', 'audio', 'game', 'comic_book', 'other')", name=op.f('ck_media_media_type')),
    sa.CheckConstraint("signed_role IS NULL OR signed_role IN ('author', 'producer', 'cast')", name=op.f('ck_media_signed_role')),
    sa.CheckConstraint('copies >= 1', name=op.f('ck_media_copies_positive')),
    sa.ForeignKeyConstraint(['added_by'], ['users.id'], name=op.f('fk_media_added_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['library_id'], ['libraries.id'], name=op.f('fk_media_library_id_libraries'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media'))
    )
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_added_by'), ['added_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_asin'), ['asin'], unique=False)
        batch_op.create_index('ix_media_browse', ['library_id', 'sort_title', 'id'], unique=False)
        batch_op.create_index('ix_media_created', ['library_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_ean13'), ['ean13'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_isbn13'), ['isbn13'], unique=False)
        batch_op.create_index(batch_op.f('ix_media_plex_guid'), ['plex_guid'], unique=False)
        batch_op.create_index('ix_media_tmdb', ['tmdb_media_type', 'tmdb_id'], unique=False)
        batch_op.create_index('ix_media_type_browse', ['library_id', 'media_type', 'sort_title', 'id'], unique=False)
        batch_op.create_index('ix_media_year', ['library_id', 'year', 'id'], unique=False)

    op.create_table('password_resets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_password_resets_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_resets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_password_resets')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_password_resets_token_hash'))
    )
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_password_resets_user_id'), ['user_id'], unique=False)

    op.create_table('sync_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('source_name', sa.String(length=255), nullable=True),
    sa.Column('source_hash', sa.String(length=64), nullable=True),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name=op.f('ck_sync_jobs_status')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_sync_jobs_created_by_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_jobs'))
    )
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_sync_jobs_owner', ['created_by', 'created_at'], unique=False)
        batch_op.create_index('ix_sync_jobs_source', ['kind', 'source_hash'], unique=False)
        batch_op.create_index('ix_sync_jobs_status', ['status', 'created_at'], unique=False)

    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('remember', sa.Boolean(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_sessions')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_user_sessions_token_hash'))
    )
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_sessions_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index('ix_user_sessions_user_created', ['user_id', 'created_at'], unique=False)

    op.create_table('import_rows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('row_number', sa.Integer(), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('match_mode', sa.String(length=32), nullable=True),
    sa.Column('matched_by', sa.String(length=64), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['sync_jobs.id'], name=op.f('fk_import_rows_job_id_sync_jobs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_import_rows_media_id_media'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_rows')),
    sa.UniqueConstraint('job_id', 'row_number', name=op.f('uq_import_rows_job_id_row_number'))
    )
    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.create_index('ix_import_rows_outcome', ['job_id', 'outcome', 'row_number'], unique=False)

    op.create_table('media_genres',
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('genre_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['genre_id'], ['genres.id'], name=op.f('fk_media_genres_genre_id_genres'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_genres_media_id_media'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('media_id', 'genre_id', name=op.f('pk_media_genres'))
    )
    with op.batch_alter_table('media_genres', schema=None) as batch_op:
        batch_op.create_index('ix_media_genres_genre', ['genre_id', 'media_id'], unique=False)

    op.create_table('media_metadata',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_metadata_media_id_media'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_metadata')),
    sa.UniqueConstraint('media_id', 'key', name=op.f('uq_media_metadata_media_id_key'))
    )
    op.create_table('media_people',
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('character', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_people_media_id_media'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_media_people_person_id_people'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('media_id', 'person_id', 'role', name=op.f('pk_media_people'))
    )
    with op.batch_alter_table('media_people', schema=None) as batch_op:
        batch_op.create_index('ix_media_people_person_role', ['person_id', 'role', 'media_id'], unique=False)

    op.create_table('media_seasons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('season_number', sa.Integer(), nullable=False),
    sa.Column('expected_episodes', sa.Integer(), nullable=True),
    sa.Column('available_episodes', sa.Integer(), nullable=True),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('watch_state', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_seasons_media_id_media'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_seasons')),
    sa.UniqueConstraint('media_id', 'season_number', name=op.f('uq_media_seasons_media_id_season_number'))
    )
    op.create_table('media_sources',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_sources_media_id_media'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_sources')),
    sa.UniqueConstraint('source', 'source_id', name=op.f('uq_media_sources_source_source_id'))
    )
    with op.batch_alter_table('media_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_sources_media_id'), ['media_id'], unique=False)

    op.create_table('media_user_state',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('watchlist', sa.Boolean(), nullable=False),
    sa.Column('last_watched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status IS NULL OR status IN ('want', 'owned', 'in_progress', 'finished', 'dropped')", name=op.f('ck_media_user_state_status')),
    sa.CheckConstraint('rating IS NULL OR (rating >= 0 AND rating <= 10)', name=op.f('ck_media_user_state_rating_range')),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_user_state_media_id_media'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_media_user_state_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_user_state')),
    sa.UniqueConstraint('media_id', 'user_id', name=op.f('uq_media_user_state_media_id_user_id'))
    )
    with op.batch_alter_table('media_user_state', schema=None) as batch_op:
        batch_op.create_index('ix_media_user_state_user_rating', ['user_id', 'rating', 'media_id'], unique=False)

    op.create_table('media_variants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('media_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('source_key', sa.String(length=255), nullable=False),
    sa.Column('resolution', sa.String(length=16), nullable=True),
    sa.Column('video_codec', sa.String(length=32), nullable=True),
    sa.Column('audio_codec', sa.String(length=32), nullable=True),
    sa.Column('container', sa.String(length=16), nullable=True),
    sa.Column('edition', sa.String(length=100), nullable=True),
    sa.Column('file_path', sa.Text(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['media_id'], ['media.id'], name=op.f('fk_media_variants_media_id_media'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_variants')),
    sa.UniqueConstraint('media_id', 'source', 'source_key', name=op.f('uq_media_variants_media_id_source_source_key'))
    )

    # Every media row belongs to a library; the instance starts with its default one.
    libraries = sa.table("libraries", sa.column("name", sa.String), sa.column("is_default", sa.Boolean),
                         sa.column("created_at", sa.DateTime(timezone=True)))
    op.bulk_insert(libraries, [{"name": "Library", "is_default": True,
                                "created_at": datetime.now(timezone.utc)}])


def downgrade():
    op.drop_table('media_variants')
    with op.batch_alter_table('media_user_state', schema=None) as batch_op:
        batch_op.drop_index('ix_media_user_state_user_rating')

    op.drop_table('media_user_state')
    with op.batch_alter_table('media_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_sources_media_id'))

    op.drop_table('media_sources')
    op.drop_table('media_seasons')
    with op.batch_alter_table('media_people', schema=None) as batch_op:
        batch_op.drop_index('ix_media_people_person_role')

    op.drop_table('media_people')
    op.drop_table('media_metadata')
    with op.batch_alter_table('media_genres', schema=None) as batch_op:
        batch_op.drop_index('ix_media_genres_genre')

    op.drop_table('media_genres')
    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.drop_index('ix_import_rows_outcome')

    op.drop_table('import_rows')
    with op.batch_alter_table('user_sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_user_sessions_user_created')
        batch_op.drop_index(batch_op.f('ix_user_sessions_expires_at'))

    op.drop_table('user_sessions')
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_jobs_status')
        batch_op.drop_index('ix_sync_jobs_source')
        batch_op.drop_index('ix_sync_jobs_owner')

    op.drop_table('sync_jobs')
    with op.batch_alter_table('password_resets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_password_resets_user_id'))

    op.drop_table('password_resets')
    with op.batch_alter_table('media', schema=None) as batch_op:
        batch_op.drop_index('ix_media_year')
        batch_op.drop_index('ix_media_type_browse')
        batch_op.drop_index('ix_media_tmdb')
        batch_op.drop_index(batch_op.f('ix_media_plex_guid'))
        batch_op.drop_index(batch_op.f('ix_media_isbn13'))
        batch_op.drop_index(batch_op.f('ix_media_ean13'))
        batch_op.drop_index('ix_media_created')
        batch_op.drop_index('ix_media_browse')
        batch_op.drop_index(batch_op.f('ix_media_asin'))
        batch_op.drop_index(batch_op.f('ix_media_added_by'))

    op.drop_table('media')
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invites_email'))

    op.drop_table('invites')
    op.drop_table('feature_flags')
    op.drop_table('app_integrations')
    with op.batch_alter_table('activity_log', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_log_entity')
        batch_op.drop_index('ix_activity_log_created')
        batch_op.drop_index('ix_activity_log_actor')
        batch_op.drop_index('ix_activity_log_action')

    op.drop_table('activity_log')
    op.drop_table('users')
    op.drop_table('people')
    op.drop_table('libraries')
    op.drop_table('genres')
