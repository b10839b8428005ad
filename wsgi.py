"""WSGI entry point for gunicorn: `gunicorn wsgi:app`.

With RUN_MIGRATIONS_ON_START=true the schema is brought to head before serving.
"""

from collectz import create_app
from collectz.startup import prepare

app = create_app()
prepare(app)
