"""Library → Review: provider matches enrichment would not apply by itself, waiting for a member's decision.

Every member sees the queue; a member who may edit the item decides (accept the suggestion or an alternate, search
again, keep it as entered). Plain posts answer 303 → GET; htmx posts get the changed fragment or HX-Redirect.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.library import bp
from collectz.services import enrichment
from collectz.services.errors import Conflict, InvalidInput
from collectz.web import htmx

TEMPLATE = "library/review.html"


def _actor() -> Any:
    return current_user._get_current_object()


@bp.route("/review")
def review_list() -> Response:
    """Pending reviews, oldest first; an htmx request gets the list block."""
    page = enrichment.pending_reviews(_actor(), request.args.get("page", 1, type=int))
    return htmx.render(TEMPLATE, block="review_list", page=page)


@bp.route("/review/badge")
def review_badge() -> Response:
    """The nav badge with its count (the nav loads it with htmx, so pages do not pay for the count)."""
    return htmx.render("library/_review_badge.html", count=enrichment.review_count())


@bp.route("/review/<int:review_id>")
def review_detail(review_id: int) -> Response:
    """The item beside its candidates; a decided review shows what was decided."""
    return _detail(enrichment.get_review(_actor(), review_id))


def _detail(view: enrichment.ReviewView, *, error: InvalidInput | None = None, block: str = "review_candidates",
            searched: dict[str, Any] | None = None) -> Response:
    return htmx.render(TEMPLATE, block=block, view=view, error=error, searched=searched or {},
                       threshold=enrichment.threshold(), status=422 if error else 200)


@bp.route("/review/<int:review_id>/accept", methods=["POST"])
def review_accept(review_id: int) -> Response:
    """Apply the chosen candidate (the suggestion or an alternate) and show the item."""
    index = request.form.get("candidate", type=int)
    try:
        result = enrichment.accept(_actor(), review_id, -1 if index is None else index,
                                   overwrite=request.form.get("overwrite") == "yes")
    except Conflict as exc:
        flash(exc.message, "error")
        return htmx.redirect(url_for("library.review_detail", review_id=review_id))
    view = enrichment.get_review(_actor(), review_id)
    filled = ", ".join(result.filled) or "nothing new"
    flash(f"Applied {result.provider}'s details to {view.media.title}: {filled}.", "success")
    return htmx.redirect(url_for("library.media_detail", media_id=view.media.id))


@bp.route("/review/<int:review_id>/search", methods=["POST"])
def review_search(review_id: int) -> Response:
    """Search the providers again with another title/year: the review's candidates are replaced."""
    title, year_text = request.form.get("title", ""), request.form.get("year", "").strip()
    year = int(year_text) if year_text.isdigit() else None
    try:
        if year_text and year is None:
            raise InvalidInput("Enter the year as four digits.", fields={"year": "Enter the year as four digits."})
        enrichment.search_again(_actor(), review_id, title, year)
    except InvalidInput as exc:
        return _detail(enrichment.get_review(_actor(), review_id), error=exc,
                       searched={"title": title, "year": year_text})
    if not htmx.is_fragment_request():
        return htmx.redirect(url_for("library.review_detail", review_id=review_id))
    return _detail(enrichment.get_review(_actor(), review_id), searched={"title": title, "year": year_text})


@bp.route("/review/<int:review_id>/keep", methods=["POST"])
def review_keep(review_id: int) -> Response:
    """Keep the item as entered; back to the queue."""
    enrichment.keep_manual(_actor(), review_id)
    flash("Kept as entered: nothing was changed.", "success")
    return htmx.redirect(url_for("library.review_list"))
