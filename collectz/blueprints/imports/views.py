"""The Import area: upload (CSV, Delicious Library, barcodes), map and preview a CSV file, start; a job's live
progress, its per-row audit (page and CSV), cancel, retry and fixing a failed row; the history of imports.

Every write is a service call (collectz.services.imports); the steps run on the workers (collectz.jobs.imports).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from itertools import chain
from typing import Any

from flask import Response, flash, request, stream_with_context, url_for
from flask_login import current_user

from collectz.blueprints.imports import bp
from collectz.blueprints.imports.forms import (
    BarcodeForm,
    FixRowForm,
    MappingForm,
    PlexForm,
    UploadForm,
    mapping_form,
)
from collectz.extensions import db
from collectz.importers import SourceError, barcode, csv_generic, delicious
from collectz.jobs import imports as import_jobs
from collectz.models import SyncJob, User
from collectz.models.base import utcnow
from collectz.security.permissions import require_writer
from collectz.services import flags
from collectz.services import imports as imports_service
from collectz.services.errors import Conflict, InvalidInput, NotFound
from collectz.services.import_writer import (
    FALLBACK_AFTER_IDENTIFIER,
    FALLBACK_TITLE_ONLY,
    IDENTIFIER_CONFLICT,
    MATCHED_BY_IDENTIFIER,
)
from collectz.web import htmx
from collectz.web.features import feature_guard, feature_off_response, require_feature

# The whole area is behind "imports" (after the sign-in hook in __init__, so visitors are sent to sign in first).
bp.before_request(feature_guard("imports"))

# (tab, label, flag)
TABS = (("csv", "CSV", "import_csv"), ("delicious", "Delicious Library", "import_delicious"),
        ("plex", "Plex", "import_plex"), ("barcode", "Barcode", "imports"))
STATUS_LABELS = {"queued": "Queued", "running": "Running", "succeeded": "Done", "failed": "Failed",
                 "cancelled": "Cancelled"}
MATCH_MODES = {MATCHED_BY_IDENTIFIER: "By identifier", FALLBACK_AFTER_IDENTIFIER: "By title (identifier unmatched)",
               FALLBACK_TITLE_ONLY: "By title", IDENTIFIER_CONFLICT: "Identifier conflict"}
OUTCOME_FILTERS = ("created", "updated", "skipped", "failed", "cancelled", "pending")
IMPORT_FINISHED = "import-finished"
PREVIEW_ROWS = 20


def _actor() -> User:
    return current_user._get_current_object()


@bp.app_context_processor
def _nav_badge() -> dict[str, Any]:
    """The nav's count of running imports, computed only when a page's nav asks for it."""
    if not current_user.is_authenticated:
        return {}
    user = _actor()
    return {"imports_running_count": lambda: _badge_count(user)}


def _badge_count(user: User) -> int:
    # One query per page: the nav already asked for imports_ui; the area's own flag guards the badge's route.
    return imports_service.running_count(user)


@bp.app_template_global()
def import_status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status)


@bp.app_template_global()
def import_kind_label(kind: str) -> str:
    return imports_service.KINDS.get(kind, kind)


# --- the Import page --------------------------------------------------------------------------------------------


def _tabs() -> list[tuple[str, str]]:
    return [(key, label) for key, label, flag in TABS if flags.is_enabled(flag)]


def _render_index(tab: str, status: int = 200, **forms: Any) -> Response:
    actor = _actor()
    tabs = _tabs()
    history = None if htmx.is_fragment_request() else imports_service.list_jobs(actor)
    return htmx.render("imports/index.html", block="tabs", status=status, tabs=tabs, tab=tab, history=history,
                       owners=imports_service.owners(history.items) if history and actor.is_admin else {},
                       upload_form=forms.get("upload_form") or UploadForm(formdata=None),
                       barcode_form=forms.get("barcode_form") or BarcodeForm(formdata=None),
                       plex_form=forms.get("plex_form") or PlexForm(formdata=None),
                       plex_sections=imports_service.plex_sections() if tab == "plex" else [],
                       plex_error=forms.get("plex_error"),
                       max_mb=imports_service.settings().IMPORT_MAX_MB)


@bp.route("/")
def index() -> Response:
    """The Import page: one tab per kind of import (`?tab=`), and the recent imports."""
    asked = request.args.get("tab", "")
    flag = next((f for key, _label, f in TABS if key == asked), None)
    if flag is not None and not flags.is_enabled(flag):
        return feature_off_response(flag)
    tabs = _tabs()
    tab = asked if flag is not None else (tabs[0][0] if tabs else "barcode")
    return _render_index(tab)


@bp.route("/jobs")
def job_list() -> Response:
    """Recent imports: the member's own; an admin sees everyone's."""
    actor = _actor()
    history = imports_service.list_jobs(actor, request.args.get("page", 1, type=int))
    return htmx.render("imports/jobs.html", block="history", history=history,
                       owners=imports_service.owners(history.items) if actor.is_admin else {})


@bp.route("/badge")
def nav_badge() -> Response:
    """The nav badge alone: it refreshes itself when an import finishes."""
    return htmx.render("imports/_badge.html", count=_badge_count(_actor()))


# --- uploads ----------------------------------------------------------------------------------------------------


def _save(form: UploadForm, kind: str) -> imports_service.Upload:
    upload = form.upload()
    return imports_service.save_upload(_actor(), kind, upload.filename or "upload", upload.stream)


def _checked(upload: imports_service.Upload, check: Any) -> Any:
    """Run a parser's check on the stored file; a file it rejects is discarded and reported as bad input."""
    try:
        return check(upload.path)
    except SourceError as exc:
        imports_service.discard_upload(upload)
        raise InvalidInput(str(exc), fields={"file": str(exc)}) from exc


def _started(job: SyncJob, created: bool) -> Response:
    if created:
        import_jobs.enqueue_stage(job.id)
        flash("Import started.", "success")
    else:
        flash("This file is already being imported.", "info")
    return htmx.redirect(url_for("imports.job_detail", job_id=job.id))


@bp.route("/csv/template.csv")
@require_feature("import_csv")
def csv_template() -> Response:
    """A CSV file with every column the importer knows and one example row per media type."""
    return Response(csv_generic.template_csv(), mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="collectz-import-template.csv"'})


@bp.route("/csv", methods=["POST"])
@require_feature("import_csv")
def csv_upload() -> Response:
    """Store a CSV file and check that it reads as one, then ask which column is which."""
    require_writer(_actor(), "import items")
    form = UploadForm()
    try:
        upload = _save(form, "csv")
        _checked(upload, csv_generic.inspect)
    except InvalidInput as exc:
        form.fail(exc.message)
        return _render_index("csv", status=422, upload_form=form)
    return htmx.redirect(url_for("imports.csv_map", token=upload.token))


@bp.route("/delicious", methods=["POST"])
@require_feature("import_delicious")
def delicious_upload() -> Response:
    """Store a Delicious Library export (XML or CSV) and start importing it."""
    actor = _actor()
    require_writer(actor, "import items")
    form = UploadForm()
    try:
        upload = _save(form, "delicious")
        source_format = _checked(upload, delicious.detect)
    except InvalidInput as exc:
        form.fail(exc.message)
        return _render_index("delicious", status=422, upload_form=form)
    return _started(*imports_service.start_import(actor, upload, {"format": source_format}))


@bp.route("/barcodes", methods=["POST"])
def barcode_start() -> Response:
    """Import a batch of typed or scanned codes, one item per code."""
    actor = _actor()
    require_writer(actor, "import items")
    form = BarcodeForm()
    before = utcnow()
    try:
        job = imports_service.start_barcodes(actor, barcode.parse_codes(form.codes.data or ""))
    except InvalidInput as exc:
        form.codes.errors = [*form.codes.errors, exc.message]
        return _render_index("barcode", status=422, barcode_form=form)
    return _started(job, _as_aware(job.created_at) >= before)


@bp.route("/plex", methods=["POST"])
@require_feature("import_plex")
def plex_start() -> Response:
    """Import the Plex sections an admin selected; one click, the job page follows the progress."""
    actor = _actor()
    require_writer(actor, "import items")
    form = PlexForm()  # its CSRF token is checked app-wide, before this view
    try:
        job, created = imports_service.start_plex(actor)
    except Conflict as exc:
        return _render_index("plex", status=409, plex_form=form, plex_error=exc.message)
    return _started(job, created)


def _as_aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)


# --- CSV: map, preview, start -----------------------------------------------------------------------------------


def _csv_upload(token: str) -> tuple[imports_service.Upload, csv_generic.CsvLayout]:
    upload = imports_service.load_upload(_actor(), token)
    if upload.kind != "csv":
        raise NotFound("No such upload.")
    return upload, _checked(upload, csv_generic.inspect)


def _render_map(upload: imports_service.Upload, layout: csv_generic.CsvLayout, form: MappingForm,
                block: str = "mapping", status: int = 200, **extra: Any) -> Response:
    return htmx.render("imports/csv_map.html", block=block, status=status, upload=upload, layout=layout, form=form,
                       outcome_labels=MATCH_MODES, **extra)


def _mapping_problem(upload: imports_service.Upload, form: MappingForm) -> str | None:
    """Why this mapping cannot be imported (a column not in the file, no title column), or None."""
    if not form.validate():
        return "Choose columns that are in the file."
    try:
        csv_generic.iter_records(upload.path, form.mapping())  # checks the mapping; reads no row yet
    except SourceError as exc:
        return str(exc)
    return None


@bp.route("/csv/<token>/map")
@require_feature("import_csv")
def csv_map(token: str) -> Response:
    """Which column of the file holds what: preselected from the column names."""
    require_writer(_actor(), "import items")
    upload, layout = _csv_upload(token)
    return _render_map(upload, layout, mapping_form(layout.columns, request.args))


@bp.route("/csv/<token>/preview", methods=["GET", "POST"])
@require_feature("import_csv")
def csv_preview(token: str) -> Response:
    """The first rows with what importing them would do; nothing is written."""
    actor = _actor()
    require_writer(actor, "import items")
    upload, layout = _csv_upload(token)
    form = mapping_form(layout.columns, request.values)
    problem = _mapping_problem(upload, form)
    rows = None
    if problem is None:
        records = csv_generic.preview(upload.path, form.mapping(), PREVIEW_ROWS)
        rows = imports_service.dry_run(actor, "csv", records, {"default_type": form.default_type.data})
    return _render_map(upload, layout, form, block="preview", status=422 if problem else 200, preview=rows,
                       preview_error=problem)


@bp.route("/csv/<token>/start", methods=["POST"])
@require_feature("import_csv")
def csv_start(token: str) -> Response:
    actor = _actor()
    require_writer(actor, "import items")
    upload, layout = _csv_upload(token)
    form = mapping_form(layout.columns, request.form)
    problem = _mapping_problem(upload, form)
    if problem:
        form.form_errors.append(problem)
        return _render_map(upload, layout, form, status=422)
    return _started(*imports_service.start_import(actor, upload, form.options()))


# --- a job ------------------------------------------------------------------------------------------------------


def _row_filters() -> dict[str, str]:
    outcome, mode = request.args.get("outcome", ""), request.args.get("match_mode", "")
    return {k: v for k, v in (("outcome", outcome if outcome in OUTCOME_FILTERS else ""),
                              ("match_mode", mode if mode in MATCH_MODES else "")) if v}


def _render_job(job_id: int, block: str) -> Response:
    actor = _actor()
    job = imports_service.get_job(actor, job_id)
    fragment = htmx.is_fragment_request()
    filters = _row_filters()
    rows = None
    deleted: set[int] = set()
    if job.is_terminal and not (fragment and block == "progress"):
        rows = imports_service.job_rows(actor, job_id, page=request.args.get("page", 1, type=int), **filters)
        deleted = imports_service.deleted_items(rows.items)
    owner = imports_service.owners([job]).get(job.created_by)
    resp = htmx.render("imports/job.html", block=block, job=job, owner=owner, rows=rows, filters=filters,
                       deleted=deleted,
                       match_modes=MATCH_MODES, outcome_filters=OUTCOME_FILTERS,
                       may_act=imports_service.can_act(actor, job))
    if fragment and block == "progress" and job.is_terminal:
        htmx.trigger(resp, IMPORT_FINISHED)  # the row table and the nav badge refresh themselves
    return resp


@bp.route("/jobs/<int:job_id>")
def job_detail(job_id: int) -> Response:
    """A job: its progress (the block polls itself while the job runs), then its summary and rows."""
    return _render_job(job_id, "progress")


@bp.route("/jobs/<int:job_id>/rows")
def job_rows(job_id: int) -> Response:
    """The job page with its row table filtered or paged; htmx gets the table alone."""
    return _render_job(job_id, "rows")


@bp.route("/jobs/<int:job_id>/rows.csv")
def job_rows_csv(job_id: int) -> Response:
    """The per-row audit as a CSV download (optionally one outcome only)."""
    outcome = _row_filters().get("outcome")
    lines = imports_service.rows_csv(_actor(), job_id, outcome)
    first = next(lines)  # the job is looked up (404) before the response starts
    body: Iterator[str] = chain([first], lines)
    name = f"import-{job_id}-rows{'-' + outcome if outcome else ''}.csv"
    return Response(stream_with_context(body), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _back_to(job_id: int) -> Response:
    return htmx.redirect(url_for("imports.job_detail", job_id=job_id))


@bp.route("/jobs/<int:job_id>/cancel", methods=["POST"])
def job_cancel(job_id: int) -> Response:
    actor = _actor()
    require_writer(actor, "cancel imports")
    try:
        job = imports_service.cancel(actor, job_id)
    except Conflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("Import cancelled." if job.is_terminal else "Cancelling: the import stops after its current batch.",
              "success")
    return _back_to(job_id)


@bp.route("/jobs/<int:job_id>/retry", methods=["POST"])
def job_retry(job_id: int) -> Response:
    actor = _actor()
    require_writer(actor, "retry imports")
    try:
        job, chunk = imports_service.retry_failed(actor, job_id)
    except Conflict as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        if chunk is not None:
            import_jobs.enqueue_chunk(job.id, chunk)
        flash("Retrying the failed rows.", "success")
    return _back_to(job_id)


@bp.route("/jobs/<int:job_id>/rows/<int:row_id>/fix", methods=["GET", "POST"])
def row_fix(job_id: int, row_id: int) -> Response:
    """Correct a failed row's values; a retry of the job's failed rows then imports it."""
    actor = _actor()
    require_writer(actor, "fix import rows")
    job, row = imports_service.failed_row(actor, job_id, row_id)
    form = FixRowForm.for_row(row.raw or {}, request.form if request.method == "POST" else None)
    if request.method == "POST" and form.validate():
        try:
            imports_service.fix_row(actor, job_id, row_id, form.values())
        except InvalidInput as exc:
            form.form_errors.append(exc.message)
        else:
            flash(f"Row {row.row_number} fixed. Retry the failed rows to import it.", "success")
            return _back_to(job_id)
    return htmx.render("imports/row_fix.html", block="fix", status=422 if request.method == "POST" else 200,
                       job=job, row=row, form=form)
