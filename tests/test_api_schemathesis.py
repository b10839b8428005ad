"""Property-based run of the whole API against its own OpenAPI document (schemathesis), on a seeded instance.

Schemathesis generates requests for every operation from the served document (valid by the schema: types,
ranges, enums; text with any Unicode, NUL included) and sends them to the app with an admin's token holding every
scope. Every answer must be a documented status, never a 5xx, with a body that matches the documented schema.
Bounded (few examples per operation, no shrinking) so that it stays a few seconds of the normal suite.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from collectz import create_app
from collectz.blueprints.api.spec import OPERATIONS, Operation
from collectz.extensions import db
from collectz.models import ImportRow, Invite, SyncJob, User
from collectz.models.base import utcnow
from collectz.services import imports, tokens
from tests.conftest import Actors, Backend, _clean

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _seed(app: Flask) -> tuple[str, dict[str, Any]]:
    """Members, items (with people, genres, seasons), an import with rows, invitations; alice's token, and the
    records each operation's path parameters point at (a deleting operation gets a record of its own)."""
    actors = Actors(app)
    with app.test_request_context():
        alice, bob = (db.session.get(User, actors.ids[n]) for n in ("alice", "bob"))
        from collectz.services import media as media_service
        from collectz.services.media import MediaInput, SeasonInput
        from collectz.services.people import Credit

        items = [media_service.create_media(bob if i % 2 else alice, MediaInput(
            title=f"Item {i}", media_type="tv_series" if i == 0 else "movie", year=1990 + i, formats=["DVD"],
            genres=["Drama"], people=[Credit("Ann Director", "director")],
            seasons=[SeasonInput(1, 10, 10, True)] if i == 0 else None)).id for i in range(6)]
        upload = imports.save_upload(bob, "csv", "items.csv", io.BytesIO(b"Title,Year\nDune,1965\n"))
        job = SyncJob(kind="csv", status="succeeded", source_name=upload.filename, created_by=bob.id, total=1,
                      processed=1, created=1)
        invites = [Invite(email=f"someone{i}@example.org", token_hash=f"schemathesis-{i}", role="user",
                          expires_at=utcnow() + timedelta(days=1), created_by=alice.id) for i in range(2)]
        dave = User(email="dave@example.org", name="Dave", role="user", password_hash="x")
        db.session.add_all([job, *invites, dave])
        db.session.flush()
        db.session.add(ImportRow(job_id=job.id, row_number=1, outcome="created", raw={"line": 2, "title": "Dune"},
                                 media_id=items[0]))
        db.session.commit()
        _row, raw = tokens.create_token(alice, "schemathesis", list(tokens.SCOPES), 30)
        targets = {"media_id": items[0], "job_id": job.id, "member_id": actors.ids["carol"],
                   "invite_id": invites[0].id, "key": "import_calibre",
                   # what a DELETE (or a revoke) uses up
                   "media_delete": items[5], "admin_member_delete": dave.id, "admin_invitation_revoke": invites[1].id}
    return raw, targets


@pytest.fixture(scope="module")
def seeded(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str, dict[str, Any]]]:
    """One app and data set for the whole run (rate limits off: the run is a burst by design)."""
    set_hypothesis_home_dir(str(tmp_path_factory.mktemp("hypothesis")))  # its caches stay out of the project
    app = create_app(settings=backend.settings(RATELIMIT_ENABLED=False))
    raw, targets = _seed(app)
    yield app, raw, targets
    _clean(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def api_schema(seeded: tuple[Flask, str, dict[str, Any]]) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", seeded[0])


def _has_inputs(op: Operation) -> bool:
    return bool(op.query or op.body is not None or op.path_params)


# One test per operation and mode (schemathesis' own pytest loader does not run under this pytest; hypothesis
# drives its strategies). Positive: valid by the schema, path ids both random and pointing at seeded records.
# Negative: invalid by the schema (wrong types, missing fields), which must be refused with a documented 4xx.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.endpoint)
def test_every_operation_answers_as_documented(op: Operation, mode: GenerationMode,
                                               seeded: tuple[Flask, str, dict[str, Any]], api_schema: Any) -> None:
    if mode is GenerationMode.NEGATIVE and not _has_inputs(op):
        pytest.skip("nothing to make invalid: the operation takes no input")
    _app, raw, targets = seeded
    operation = api_schema[op.path][op.method]  # relative to the document's server, /api/v1
    strategy = operation.as_strategy(mode)
    if op.path_params:
        bound = {name: targets.get(op.endpoint, targets[name]) for name in op.path_params}
        strategy = strategy | operation.as_strategy(mode, path_parameters=bound)
    checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {raw}"}, checks=checks)

    run()
