"""`make run`: migrate, then serve the app with an in-process background worker.

Embedded defaults: SQLite under instance/, uploads on local disk, and with no REDIS_URL an
in-process Redis stand-in, so background jobs and their progress pages behave as in production.
"""

from __future__ import annotations

import os

from dotenv import load_dotenv
from werkzeug.serving import run_simple


def main() -> None:
    load_dotenv()
    from collectz.jobs.runner import start_embedded
    from collectz.startup import build_app, freeze_start_up_objects, prepare

    app = build_app()
    prepare(app, migrate=True)
    start_embedded(app)
    freeze_start_up_objects()
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    settings = app.config["COLLECTZ"]
    database = app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0]
    queue_kind = "redis" if settings.REDIS_URL else "embedded"
    print(f"collectZ is running at http://{host}:{port}/  (database: {database}, queue: {queue_kind}; "
          "Ctrl-C stops it)", flush=True)
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
