"""WSGI entry point for gunicorn: `gunicorn wsgi:app`.

Reads `.env` like the other entry points. With RUN_MIGRATIONS_ON_START=true the schema is
brought to head before serving (one process at a time). A bad setting or a database schema
newer than this code stops the process with its reason (exit code 3).
"""

from dotenv import load_dotenv

load_dotenv()

from collectz.startup import build_app, freeze_start_up_objects, prepare  # noqa: E402

app = build_app()
prepare(app)
freeze_start_up_objects()
