"""The background worker: `python worker.py` runs rq on queues imports, enrichment, maintenance.

It needs REDIS_URL (the web app and every worker share that Redis). Scale out by running more.
"""

from __future__ import annotations

import sys
import threading

from dotenv import load_dotenv


def main() -> int:
    load_dotenv()
    from collectz import jobs
    from collectz.jobs.runner import build_worker, start_ticker
    from collectz.startup import build_app, freeze_start_up_objects

    app = build_app()
    if not app.config["COLLECTZ"].REDIS_URL:
        print("worker.py needs REDIS_URL. Without Redis, `make run` runs jobs inside the web process.",
              file=sys.stderr)
        return 2
    jobs.set_app(app)
    # rq forks a scheduler process: it must not inherit the pooled database connections of the start-up checks
    # (a killed worker's twin would keep its transactions and locks open).
    from collectz.extensions import db

    with app.app_context():
        db.engine.dispose()
    worker = build_worker(app)
    freeze_start_up_objects()
    stop = threading.Event()
    start_ticker(app, worker.connection, stop)
    try:
        worker.work(with_scheduler=True)
    finally:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
