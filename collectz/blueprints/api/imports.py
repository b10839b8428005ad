"""Imports: start one from a CSV file, a Delicious Library export or the Plex sections an admin chose; list jobs;
a job's progress and its per-row outcomes. The steps run on the workers, as for the Import page
(collectz.services.imports, collectz.jobs.imports); the feature flags that hide the Import page's tabs apply here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request
from werkzeug.datastructures import FileStorage

from collectz.blueprints.api import auth, outputs
from collectz.blueprints.api.inputs import MISSING, Reader, given
from collectz.blueprints.api.schemas import LIMIT, PAGE, ref
from collectz.blueprints.api.spec import MULTIPART, Param, operation, read_query
from collectz.importers import SourceError, csv_generic, delicious
from collectz.jobs import imports as import_jobs
from collectz.models import SyncJob
from collectz.models.media_types import MEDIA_TYPES
from collectz.security.permissions import require_writer
from collectz.services import flags
from collectz.services import imports as service
from collectz.services.errors import InvalidInput
from collectz.web.features import feature_off_response

SCOPE = "import:run"
_PER_PAGE = 20
# The flags of each kind (the Import page's tabs): the whole area, then the kind's own.
_FLAGS = {"csv": ("imports", "import_csv"), "delicious": ("imports", "import_delicious"),
          "plex": ("imports", "import_plex")}


def _off(*keys: str) -> Response | None:
    for key in keys:
        if not flags.is_enabled(key):
            return feature_off_response(key)  # a 404 to everyone, as on the pages
    return None


def _started(job: SyncJob, created: bool) -> Response:
    if created:
        import_jobs.enqueue_stage(job.id)
    resp = jsonify(job=outputs.job(job), started=created)
    resp.status_code = 202 if created else 200
    return resp


def _file() -> FileStorage:
    upload = request.files.get("file")
    if not isinstance(upload, FileStorage) or not upload.filename:
        raise InvalidInput("Send the file as the multipart field `file`.", fields={"file": "Choose a file to upload."})
    return upload


def _checked(upload: service.Upload, check: Callable[[Any], Any], field: str = "file") -> Any:
    """A parser's check on the stored file; a file it rejects is discarded and named as bad input."""
    try:
        return check(upload.path)
    except SourceError as exc:
        service.discard_upload(upload)
        raise InvalidInput(str(exc), fields={field: str(exc)}) from exc


def _csv_options() -> tuple[dict[str, str] | None, str]:
    """The optional column mapping (a JSON object in the form field `mapping`) and default type."""
    r = Reader(request.form, json=False)
    default_type = given(r.choice("default_type", MEDIA_TYPES), "other")
    raw = request.form.get("mapping")
    mapping = None
    if raw is not None:
        try:
            mapping = json.loads(raw)
        except ValueError:
            mapping = MISSING
        if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                    for k, v in mapping.items()):
            r.errors["mapping"] = "A JSON object of our field name → the file's column name."
    r.done()
    return mapping, default_type


_START_ERRORS = (404, 409, 413)  # 404: the kind's feature is turned off


@operation("POST", "/imports/csv", summary="Import a CSV file", scope=SCOPE, tag="imports",
           body=ref("CsvUpload"), body_type=MULTIPART, errors=_START_ERRORS,
           description="Upload and start at once. Without `mapping`, columns are matched by name as the Import page "
                       "preselects them (the file needs a title column). Uploading the same file again while its "
                       "import runs answers that job (200, `started`: false).",
           responses={202: ("The import was started.", ref("JobStarted")),
                      200: ("This file is already being imported: that job.", ref("JobStarted"))})
def import_csv() -> Response:
    off = _off(*_FLAGS["csv"])
    if off:
        return off
    actor = auth.actor()
    require_writer(actor, "import items")  # the role before the upload, as the Import page does
    mapping, default_type = _csv_options()
    sent = _file()
    upload = service.save_upload(actor, "csv", sent.filename or "upload.csv", sent.stream)
    layout = _checked(upload, csv_generic.inspect)
    field = "file" if mapping is None else "mapping"  # a file without a title column, or a mapping without one
    mapping = mapping if mapping is not None else csv_generic.auto_mapping(layout.columns)
    _checked(upload, lambda path: csv_generic.iter_records(path, mapping), field)  # checks it; reads no row
    return _started(*service.start_import(actor, upload, {"mapping": mapping, "default_type": default_type}))


@operation("POST", "/imports/delicious", summary="Import a Delicious Library export", scope=SCOPE, tag="imports",
           body=ref("FileUpload"), body_type=MULTIPART, errors=_START_ERRORS,
           description="The XML (property list) or CSV export. The same file again while its import runs answers "
                       "that job (200, `started`: false).",
           responses={202: ("The import was started.", ref("JobStarted")),
                      200: ("This file is already being imported: that job.", ref("JobStarted"))})
def import_delicious() -> Response:
    off = _off(*_FLAGS["delicious"])
    if off:
        return off
    actor = auth.actor()
    require_writer(actor, "import items")
    sent = _file()
    upload = service.save_upload(actor, "delicious", sent.filename or "upload", sent.stream)
    source_format = _checked(upload, delicious.detect)
    return _started(*service.start_import(actor, upload, {"format": source_format}))


@operation("POST", "/imports/plex", summary="Import from Plex", scope=SCOPE, tag="imports", errors=(404, 409),
           description="Imports the Plex sections an admin selected (Admin → Integrations); 409 when Plex is not set "
                       "up. While your Plex import runs, answers that job (200, `started`: false).",
           responses={202: ("The import was started.", ref("JobStarted")),
                      200: ("Your Plex import is already running: that job.", ref("JobStarted"))})
def import_plex() -> Response:
    off = _off(*_FLAGS["plex"])
    if off:
        return off
    return _started(*service.start_plex(auth.actor()))


_PAGING = (Param("page", PAGE, "Page number (default 1)."),
           Param("limit", LIMIT, f"Per page (default {_PER_PAGE})."))
_ROW_QUERY = (Param("outcome", {"type": "string", "enum": list(service.OUTCOMES)}, "Only rows with this outcome."),
              Param("match_mode", {"type": "string", "maxLength": 40}, "Only rows matched this way."), *_PAGING)


@operation("GET", "/imports", summary="Recent imports", scope=SCOPE, tag="imports", query=_PAGING, errors=(404,),
           description="Your imports, newest first; an admin sees everyone's.",
           responses={200: ("A page of import jobs.", ref("JobPage"))})
def import_list() -> Response:
    off = _off("imports")
    if off:
        return off
    query = read_query(_PAGING)
    jobs = service.list_jobs(auth.actor(), query.get("page", 1), query.get("limit", _PER_PAGE))
    return jsonify(outputs.numbered(jobs, [outputs.job(j) for j in jobs.items]))


@operation("GET", "/imports/{job_id}", summary="An import's progress and counts", scope=SCOPE, tag="imports",
           description="Poll it while `status` is queued or running. Someone else's import is a 404 (admins see "
                       "all).",
           responses={200: ("The import job.", ref("Job"))})
def import_get(job_id: int) -> Response:
    off = _off("imports")
    if off:
        return off
    return jsonify(outputs.job(service.get_job(auth.actor(), job_id)))


@operation("GET", "/imports/{job_id}/rows", summary="An import's rows and their outcomes", scope=SCOPE,
           tag="imports",
           query=_ROW_QUERY,
           responses={200: ("A page of rows, in file order.", ref("ImportRowPage"))})
def import_rows(job_id: int) -> Response:
    off = _off("imports")
    if off:
        return off
    query = read_query(_ROW_QUERY)
    rows = service.job_rows(auth.actor(), job_id, query.get("outcome"), query.get("match_mode") or None,
                            query.get("page", 1), query.get("limit", _PER_PAGE))
    return jsonify(outputs.numbered(rows, [outputs.import_row(row) for row in rows.items]))
