"""count generations: when a cached library count is still right (PostgreSQL)

`count_generations` holds counters (8 slots a kind) that PostgreSQL itself moves on every write to what the library's counts read:
kind `catalog` (media, people, genres and their links, libraries) and kind `user_state` (members' ratings and
statuses). A statement-level trigger on each of those tables adds 1 to one of its kind's slots, in the writing
transaction, so a count cached under the sum of the slots can never outlive a committed change
(services/count_cache.py). A writer takes the first slot no other transaction holds (FOR UPDATE SKIP LOCKED), so
writers never wait for one another here; a transaction moves each kind once (a transaction-local setting says
it has), at its first write. The `instance` row is a
random number drawn when the table is made: a database dropped and made again under the same name is not mistaken
for the old one.

SQLite has no such table: its counts are not cached. Derived like the search indexes: not in the models, not in
backups (services.indexing.DERIVED_TABLES).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 10:00:00
"""

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

WATCHED = {
    'media': 'catalog', 'genres': 'catalog', 'media_genres': 'catalog', 'people': 'catalog',
    'media_people': 'catalog', 'libraries': 'catalog', 'media_user_state': 'user_state',
}


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute("""
        CREATE TABLE count_generations (
            kind varchar(16) NOT NULL,
            slot smallint NOT NULL,
            value bigint NOT NULL DEFAULT 0,
            CONSTRAINT pk_count_generations PRIMARY KEY (kind, slot)
        )""")
    op.execute("""
        INSERT INTO count_generations (kind, slot, value)
        SELECT kind, slot, 0 FROM unnest(ARRAY['catalog', 'user_state']) AS kind,
                                  generate_series(0, 7) AS slot
        UNION ALL SELECT 'instance', 0, floor(random() * 9007199254740991)::bigint""")
    op.execute("""
        CREATE FUNCTION count_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Once per transaction and kind: the change shows at commit, one step is enough (and a row updated
            -- thousands of times in one transaction makes every later update walk all its versions).
            IF current_setting('collectz.count_generation_' || TG_ARGV[0], true) = 'bumped' THEN
                RETURN NULL;
            END IF;
            PERFORM set_config('collectz.count_generation_' || TG_ARGV[0], 'bumped', true);
            UPDATE count_generations SET value = value + 1
             WHERE (kind, slot) = (SELECT g.kind, g.slot FROM count_generations g WHERE g.kind = TG_ARGV[0]
                                    ORDER BY g.slot LIMIT 1 FOR UPDATE SKIP LOCKED);
            IF NOT FOUND THEN  -- every slot is another writer's: wait for the first
                UPDATE count_generations SET value = value + 1 WHERE kind = TG_ARGV[0] AND slot = 0;
            END IF;
            RETURN NULL;
        END $$""")
    for table, kind in WATCHED.items():
        op.execute(f"CREATE TRIGGER {table}_count_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION count_generation_bump('{kind}')")


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_count_generation ON {table}")
    op.execute("DROP FUNCTION IF EXISTS count_generation_bump()")
    op.execute("DROP TABLE IF EXISTS count_generations")
