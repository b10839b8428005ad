"""Enrichment: find an item's metadata at its providers, score the match, apply it or queue it for Review.

Identifier first: a book's ISBN at the book providers; an EAN/UPC at the type's providers, then at the barcode
lookup service; a TMDB or IMDb id at TMDB. Then the title (+ year, people, platform) as the fallback. Every
candidate gets a score in 0..1 (`score`, below); the best one is applied when it reaches ENRICH_CONFIDENCE_THRESHOLD
and is not ambiguous (`is_ambiguous`), else the item gets a pending review (Library → Review) and nothing is applied.
Applying fills EMPTY fields only unless the caller asks to overwrite; identifiers a member typed are never replaced.

A provider that fails (5xx, 429, unreachable…) never fails anything else: the result is `failed` with the reason and
`retryable`, nothing is applied and no review is opened (the retry may still match by identifier). A failure marks
the provider down for the rest of the run (`Run`), so one outage is not asked again for every remaining item.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from difflib import SequenceMatcher
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from collectz.extensions import db
from collectz.models import EnrichmentReview, Media, MediaMetadata, MediaSeason, User
from collectz.models.base import utcnow
from collectz.providers import registry
from collectz.providers.base import ASIN, EAN13, IMDB_ID, ISBN13, TMDB_ID, MetadataProvider, SearchQuery
from collectz.providers.http import BadCredentials, ProviderError, UrlRejected
from collectz.providers.records import Candidate, EpisodeInfo, SeasonInfo, jsonable
from collectz.security.permissions import can_edit_media, require_media_edit, require_writer
from collectz.services import audit, covers, flags
from collectz.services.errors import Conflict, InvalidInput, NotFound
from collectz.services.import_writer import (
    FALLBACK_AFTER_IDENTIFIER,
    FALLBACK_TITLE_ONLY,
    MATCHED_BY_IDENTIFIER,
    RowError,
    convert,
    title_key,
)
from collectz.services.indexing import refresh_media_index
from collectz.services.pagination import Page
from collectz.services.people import set_genres, set_people

log = logging.getLogger("collectz.enrichment")

# --- scoring ------------------------------------------------------------------------------------------------------
# score = weighted mean of four parts, each 0..1. A part either side does not know scores UNKNOWN (0.5): a sparse
# item cannot reach the default threshold on its title alone (0.55 + 0.1 + 0.1 + 0.075 = 0.825 < 0.85), so a title
# without a year or a person goes to Review instead of being applied on a guess.
WEIGHTS = {"title": 0.55, "year": 0.2, "people": 0.15, "type": 0.1}  # games: "people" is the platform
UNKNOWN = 0.5
YEAR_OFF_BY_ONE = 0.6  # release vs. copyright year, a late-December release: close, not the same
AMBIGUITY_MARGIN = 0.05  # the best two closer than this cannot be told apart
REVIEW_CANDIDATES = 5  # kept on a review, best first
SEARCH_LIMIT = 10
IDENTIFIER_LABELS = {ISBN13: "ISBN", EAN13: "EAN/UPC", TMDB_ID: "TMDB id", IMDB_ID: "IMDb id", ASIN: "ASIN"}
# Columns enrichment may fill; identifiers among them are filled when empty but never overwritten.
FILL_COLUMNS = ("title", "original_title", "year", "release_date", "overview", "runtime", "isbn13", "ean13", "asin",
                "tmdb_id")
NEVER_OVERWRITE = frozenset({"isbn13", "ean13", "asin", "tmdb_id"})
EMPTY = (None, "", [], {})
# Failures that pass (the provider is down or busy): the item is tried again later. The others need an admin.
TRANSIENT = ("unreachable", "unavailable", "rate_limited", "bad_response")


@dataclass(frozen=True)
class ItemFacts:
    """What an item says about itself, as scoring compares it."""

    title: str
    media_type: str
    year: int | None = None
    people: tuple[str, ...] = ()
    platform: str | None = None

    @classmethod
    def of(cls, media: Media) -> ItemFacts:
        platform = (media.type_details or {}).get("platform") if media.media_type == "game" else None
        return cls(title=media.title, media_type=media.media_type, year=media.year,
                   people=tuple(mp.person.name for mp in media.people if mp.person is not None),
                   platform=str(platform) if platform else None)


@dataclass
class Scored:
    """A candidate and its score."""

    score: float
    candidate: Candidate


def _name_key(name: str) -> str:
    """A person's name with case, accents, punctuation and word order folded ("Herbert, Frank" = "Frank Herbert")."""
    return " ".join(sorted(title_key(name).split()))


def title_similarity(a: str, b: str) -> float:
    """0..1: how alike two titles are once normalised (case, accents, punctuation, a leading article)."""
    left, right = title_key(a), title_key(b)
    if not left or not right:
        return 0.0
    if left == right:
        return 1.0
    return SequenceMatcher(None, left, right, autojunk=False).ratio()


def _year_part(mine: int | None, theirs: int | None) -> float:
    if mine is None or theirs is None:
        return UNKNOWN
    gap = abs(mine - theirs)
    return 1.0 if gap == 0 else YEAR_OFF_BY_ONE if gap == 1 else 0.0


def _people_part(facts: ItemFacts, candidate: Candidate) -> float:
    """Share of the smaller list of names found in the other (authors, artists, directors… any role)."""
    if facts.media_type == "game":
        platform = candidate.details.get("platform")
        if not facts.platform or not platform:
            return UNKNOWN
        mine, theirs = title_key(facts.platform), title_key(str(platform))
        return 1.0 if mine in theirs or theirs in mine else 0.0
    mine = {_name_key(n) for n in facts.people if n.strip()}
    theirs = {_name_key(n) for _role, n in candidate.people if n.strip()}
    if not mine or not theirs:
        return UNKNOWN
    return len(mine & theirs) / min(len(mine), len(theirs))


def score(facts: ItemFacts, candidate: Candidate, *, by_identifier: bool) -> float:
    """How sure we are that `candidate` describes the item, 0..1, deterministic (rounded to 3 places).

    `by_identifier`: the candidate is the only one the provider returned for the item's identifier; that is 1.0,
    unless the provider says it is another media type (a barcode shared by a film and its soundtrack), which is then
    scored like a title match. Otherwise: title similarity (the better of title and original title) 0.55, year
    (equal 1, ±1 0.6) 0.2, people overlap (a game's platform instead) 0.15, same media type 0.1.
    """
    same_type = candidate.media_type == facts.media_type
    if by_identifier and same_type:
        return 1.0
    titles = [candidate.title] + ([candidate.original_title] if candidate.original_title else [])
    parts = {
        "title": max(title_similarity(facts.title, t) for t in titles),
        "year": _year_part(facts.year, candidate.year),
        "people": _people_part(facts, candidate),
        "type": 1.0 if same_type else 0.0,
    }
    return round(sum(WEIGHTS[name] * value for name, value in parts.items()), 3)


def rank(facts: ItemFacts, candidates: Sequence[Candidate], *, by_identifier: bool = False) -> list[Scored]:
    """Candidates scored and sorted best first; ties keep the provider's order (its own relevance)."""
    scored = [Scored(score(facts, c, by_identifier=by_identifier), c) for c in candidates]
    return sorted(scored, key=lambda s: -s.score)  # sorted() is stable


def is_ambiguous(scored: Sequence[Scored]) -> bool:
    """Whether the best two (sorted best first) are within AMBIGUITY_MARGIN: then no one is applied by itself."""
    return len(scored) >= 2 and scored[0].score - scored[1].score < AMBIGUITY_MARGIN


def threshold() -> float:
    return float(current_app.config["COLLECTZ"].ENRICH_CONFIDENCE_THRESHOLD)


# --- candidates as JSON (a review keeps them) ----------------------------------------------------------------------


def candidate_to_dict(candidate: Candidate) -> dict[str, Any]:
    """A Candidate as plain JSON values (dates as ISO text, people as [role, name])."""
    return jsonable(dataclasses.asdict(candidate))




def candidate_from_dict(data: dict[str, Any]) -> Candidate:
    """The Candidate `candidate_to_dict` wrote (checked again on the way in, like any provider answer)."""
    values = dict(data)
    values["release_date"] = _date(values.get("release_date"))
    values["people"] = [(role, name) for role, name in values.get("people") or []]
    values["seasons"] = [SeasonInfo(number=s["number"], episode_count=s.get("episode_count"), name=s.get("name"),
                                    air_date=_date(s.get("air_date")),
                                    episodes=[EpisodeInfo(e["number"], e.get("title"), _date(e.get("air_date")))
                                              for e in s.get("episodes") or []])
                         for s in values.get("seasons") or []]
    known = {f.name for f in dataclasses.fields(Candidate)}
    return Candidate(**{k: v for k, v in values.items() if k in known})


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


# --- one item -----------------------------------------------------------------------------------------------------


@dataclass
class EnrichmentResult:
    """What enriching one item did."""

    status: str  # applied | review | no_match | failed | skipped
    match_mode: str | None = None  # matched_by_identifier | identifier_no_match_fallback_title | fallback_title_only
    provider: str | None = None
    score: float | None = None
    reason: str | None = None
    matched_by: str | None = None  # the identifier kind, for an identifier match
    filled: list[str] = field(default_factory=list)
    review_id: int | None = None
    retryable: bool = False
    retry_after: float | None = None

    def summary(self, *, will_retry: bool | None = None) -> str:
        """One line for the import row (import_rows.enrichment, at most 300 characters)."""
        retry = self.retryable if will_retry is None else will_retry
        if self.status == "applied":
            if self.match_mode == MATCHED_BY_IDENTIFIER:
                text = f"matched by {IDENTIFIER_LABELS.get(self.matched_by or '', 'identifier')} ({self.provider})"
            else:
                after = " after no identifier match" if self.match_mode == FALLBACK_AFTER_IDENTIFIER else ""
                text = f"matched by title{after} ({self.provider}, score {self.score:.2f})"
            text += f": filled {', '.join(self.filled)}" if self.filled else ": nothing new"
        elif self.status == "review":
            text = f"review: {self.reason}"
        elif self.status == "failed":
            text = f"failed ({self.reason})" + (" — will retry" if retry else "")
        else:
            text = f"{self.status.replace('_', ' ')}" + (f" ({self.reason})" if self.reason else "")
        return text[:300]


class _Failed(Exception):
    """A provider call failed; carries the result to return."""

    def __init__(self, result: EnrichmentResult) -> None:
        super().__init__(result.reason)
        self.result = result


T = TypeVar("T")


class Run:
    """One enrichment pass (an import's items, or one item): providers built once per media type, and the providers
    that failed in this pass, which are not asked again until the next pass."""

    def __init__(self) -> None:
        self._providers: dict[str, list[MetadataProvider]] = {}
        self._barcode: list[MetadataProvider | None] = []
        self.down: dict[str, ProviderError] = {}

    def providers(self, media_type: str) -> list[MetadataProvider]:
        """The type's usable providers, first choice first (`registry.providers_for`, one at a time: a provider
        that cannot even be built, say its host does not resolve, is down and the others still serve)."""
        if media_type not in self._providers:
            flag = registry.TYPE_FLAGS.get(media_type)
            keys = registry.chain(media_type) if flag is not None and flags.is_enabled(flag) else []
            self._providers[media_type] = [p for p in (self._build(lambda k=key: registry.build(k), key)
                                                       for key in keys) if p is not None]
        return self._providers[media_type]

    def barcode(self) -> MetadataProvider | None:
        if not self._barcode:
            self._barcode.append(self._build(registry.barcode_provider, "barcode"))
        return self._barcode[0]

    def _build(self, make: Callable[[], MetadataProvider | None], key: str) -> MetadataProvider | None:
        try:
            return make()
        except ProviderError as exc:
            log.warning("provider not usable", extra={"fields": {"provider": key, "status": exc.status}})
            self.down[key] = exc
            return None

    def failure(self, keys: set[str] | None = None) -> _Failed | None:
        """The first failure of these providers (any, without `keys`) in this pass, or None."""
        for key, exc in self.down.items():
            if keys is None or key in keys:
                return _Failed(_failure(key, exc))
        return None

    def call(self, provider: MetadataProvider, fn: Callable[[], T]) -> T:
        """Call a provider; a failure becomes _Failed (and marks the provider down for this pass)."""
        earlier = self.down.get(provider.key)
        if earlier is not None:
            raise _Failed(_failure(provider.key, earlier))
        try:
            return fn()
        except ProviderError as exc:
            log.warning("provider call failed", extra={"fields": {"provider": provider.key, "status": exc.status}})
            self.down[provider.key] = exc
            raise _Failed(_failure(provider.key, exc)) from None


def _failure(key: str, exc: ProviderError) -> EnrichmentResult:
    """A failed result; the reason names the provider and the kind of failure (never a URL or a key)."""
    transient = exc.status in TRANSIENT and not isinstance(exc, BadCredentials | UrlRejected)
    reason = f"{key}: {exc.status.replace('_', ' ')}"
    return EnrichmentResult("failed", provider=key, reason=reason, retryable=transient,
                            retry_after=getattr(exc, "retry_after", None))


def _load(media_id: int) -> Media | None:
    return db.session.scalar(select(Media).where(Media.id == media_id).options(
        selectinload(Media.people), selectinload(Media.genres), selectinload(Media.seasons)))


def _imdb_id(media: Media) -> str | None:
    return db.session.scalar(select(MediaMetadata.value).where(MediaMetadata.media_id == media.id,
                                                               MediaMetadata.key == "imdb_id"))


def identifier_lookups(media: Media) -> list[tuple[str, str]]:
    """(kind, value) to look up, strongest first. A book's EAN-13 starting 978/979 is its ISBN."""
    lookups: list[tuple[str, str]] = []
    if media.isbn13:
        lookups.append((ISBN13, media.isbn13))
    if media.ean13:
        if media.ean13[:3] in ("978", "979") and media.media_type == "book":
            if media.ean13 != media.isbn13:
                lookups.append((ISBN13, media.ean13))
        else:
            lookups.append((EAN13, media.ean13))
    if media.tmdb_id:
        lookups.append((TMDB_ID, str(media.tmdb_id)))
    imdb = _imdb_id(media) if media.media_type in ("movie", "tv_series") else None
    if imdb:
        lookups.append((IMDB_ID, imdb))
    if media.asin:
        lookups.append((ASIN, media.asin))
    return lookups


def _asked(kind: str, run: Run, providers: list[MetadataProvider]) -> list[MetadataProvider]:
    """Who is asked for an identifier: the type's providers; for an EAN/UPC also the barcode lookup service."""
    if kind == EAN13:
        barcode = run.barcode()
        return [*providers, *([barcode] if barcode is not None else [])]
    return providers


def _query(media: Media, *, with_year: bool = True) -> SearchQuery:
    details = media.type_details or {}
    people = tuple(mp.person.name for mp in media.people if mp.person is not None)
    return SearchQuery(title=media.title, media_type=media.media_type, year=media.year if with_year else None,
                       people=people, platform=details.get("platform"), publisher=details.get("publisher"),
                       series=details.get("series"), number=details.get("issue"))


def _search(run: Run, providers: list[MetadataProvider], query: SearchQuery) -> list[Candidate]:
    """The first provider (chain order) that finds anything; a search with a year that finds nothing is asked
    again without it (a catalogue year is often the edition's, not the first release's). A provider that fails is
    skipped (Run remembers the failure)."""
    for provider in providers:
        try:
            found = run.call(provider, lambda p=provider: p.search(query, limit=SEARCH_LIMIT))
            if not found and query.year is not None:
                bare = dataclasses.replace(query, year=None)
                found = run.call(provider, lambda p=provider, q=bare: p.search(q, limit=SEARCH_LIMIT))
        except _Failed:
            continue
        if found:
            return found
    return []


def _provider(run: Run, key: str, media_type: str) -> MetadataProvider | None:
    found = next((p for p in run.providers(media_type) if p.key == key), None)
    if found is None and run.barcode() is not None and run.barcode().key == key:  # type: ignore[union-attr]
        found = run.barcode()
    return found


def enrich_item(media_id: int, *, actor: User | None = None, overwrite: bool = False, job_id: int | None = None,
                run: Run | None = None) -> EnrichmentResult:
    """Find the item's metadata and apply it, queue it for Review, or say why not; commits what it did.

    `actor` is who asked (None: the import's background job). A provider failure returns `failed` (retryable when
    it may pass) with nothing applied.
    """
    run = run or Run()
    media = _load(media_id)
    if media is None:
        return EnrichmentResult("skipped", reason="the item no longer exists")
    providers = run.providers(media.media_type)
    lookups = identifier_lookups(media)
    if not providers and not (media.ean13 and run.barcode() is not None):
        failure = run.failure(_relevant(media, run, lookups))
        if failure is not None:
            return failure.result
        return EnrichmentResult("skipped", reason=_no_provider_reason(media.media_type))
    try:
        result = _match(media, providers, lookups, run, actor=actor, overwrite=overwrite, job_id=job_id)
    except _Failed as failed:
        db.session.rollback()
        return failed.result
    except InvalidInput as exc:  # the provider's data does not pass our checks: nothing is applied
        db.session.rollback()
        return EnrichmentResult("failed", reason=exc.message[:200])
    db.session.commit()
    return result


def _no_provider_reason(media_type: str) -> str:
    flag = registry.TYPE_FLAGS.get(media_type)
    if flag is None:
        return "no provider for this media type"
    return "no provider is turned on for this media type (Admin → Integrations, Admin → Flags)"


def _match(media: Media, providers: list[MetadataProvider], lookups: list[tuple[str, str]], run: Run, *,
           actor: User | None, overwrite: bool, job_id: int | None) -> EnrichmentResult:
    """Identifier first, then the title. A provider that fails is skipped for the others; if nothing is applied,
    its failure is the result (a retry may still match by identifier, so no review is opened meanwhile)."""
    facts = ItemFacts.of(media)
    pool: list[Scored] = []
    for kind, value in lookups:
        for provider in _asked(kind, run, providers):
            try:
                found = run.call(provider, lambda p=provider, k=kind, v=value: p.by_identifier(k, v))
                if len(found) == 1:
                    full = run.call(provider, lambda p=provider, c=found[0]: p.details(c))
                    best = score(facts, full, by_identifier=True)
                    if best >= threshold():
                        filled = apply_candidate(media, full, actor=actor, overwrite=overwrite,
                                                 match_mode=MATCHED_BY_IDENTIFIER, score=best)
                        return EnrichmentResult("applied", MATCHED_BY_IDENTIFIER, full.provider, best,
                                                matched_by=kind, filled=filled)
            except _Failed:
                continue
            pool += rank(facts, found)
    mode = FALLBACK_AFTER_IDENTIFIER if lookups else FALLBACK_TITLE_ONLY
    pool = _unique(pool + rank(facts, _search(run, providers, _query(media))))
    if pool and pool[0].score >= threshold() and not is_ambiguous(pool):
        top = pool[0]
        provider = _provider(run, top.candidate.provider, media.media_type)
        full = run.call(provider, lambda: provider.details(top.candidate)) if provider else top.candidate
        rescored = _rescore(facts, top.candidate, full)
        if rescored >= threshold():  # details (people, a fuller title) confirm or refute the guess
            filled = apply_candidate(media, full, actor=actor, overwrite=overwrite, match_mode=mode, score=rescored)
            return EnrichmentResult("applied", mode, full.provider, rescored, filled=filled)
        pool = sorted([Scored(rescored, full), *pool[1:]], key=lambda s: -s.score)
    failure = run.failure(_relevant(media, run, lookups))
    if failure is not None:
        raise failure
    if not pool:
        names = ", ".join(p.key for p in providers) or "the barcode service"
        return EnrichmentResult("no_match", mode, reason=f"nothing found at {names}")
    reason = _review_reason(pool)
    review = open_review(media.id, pool[:REVIEW_CANDIDATES], reason, match_mode=mode, job_id=job_id)
    return EnrichmentResult("review", mode, pool[0].candidate.provider, pool[0].score, reason=reason,
                            review_id=review.id)


def _rescore(facts: ItemFacts, light: Candidate, full: Candidate) -> float:
    """The score with the provider's details. A search result's year may be the work's first publication and the
    details' the edition's (Open Library): either year is the item's, so the better of the two counts."""
    scores = [score(facts, full, by_identifier=False)]
    if light.year is not None and light.year != full.year:
        scores.append(score(facts, dataclasses.replace(full, year=light.year), by_identifier=False))
    return max(scores)


def _relevant(media: Media, run: Run, lookups: list[tuple[str, str]]) -> set[str]:
    """Provider keys whose failure matters for this item: its type's chain, and the barcode service for an EAN."""
    keys = set(registry.chain(media.media_type)) if media.media_type in registry.TYPE_FLAGS else set()
    if any(kind == EAN13 for kind, _value in lookups):
        barcode = run.barcode()
        keys |= {"barcode", *([barcode.key] if barcode is not None else [])}
    return keys


def _unique(scored: list[Scored]) -> list[Scored]:
    seen: set[tuple[str, str]] = set()
    kept = []
    for entry in sorted(scored, key=lambda s: -s.score):
        key = (entry.candidate.provider, entry.candidate.provider_id)
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


def _review_reason(pool: list[Scored]) -> str:
    if is_ambiguous(pool):
        return f"{sum(1 for s in pool if pool[0].score - s.score < AMBIGUITY_MARGIN)} matches too close to choose"
    return f"best match scores {pool[0].score:.2f}, below {threshold():.2f}"


# --- applying a candidate -------------------------------------------------------------------------------------------


def apply_candidate(media: Media, candidate: Candidate, *, actor: User | None, overwrite: bool = False,
                    match_mode: str | None = None, score: float | None = None) -> list[str]:
    """Fill the item from a candidate (empty fields only unless `overwrite`), audited as `media.enriched`; returns
    the fields filled. The candidate goes through the import's own checks (`import_writer.convert`); the caller
    commits."""
    record = candidate.to_record()
    record.pop("source_id", None)
    record["media_type"] = media.media_type  # the member's choice of type stands
    try:
        incoming = convert(record, media.media_type)
    except RowError as exc:
        raise InvalidInput(f"{candidate.provider}'s data for this item is not usable: {exc}") from None
    filled = _fill_columns(media, incoming.columns, overwrite)
    filled += _fill_related(media, incoming, overwrite)
    filled += _fill_metadata(media, {**incoming.metadata, **_provider_ids(candidate)}, overwrite)
    refresh_media_index(media)
    db.session.flush()
    covers.want_cover(media, candidate.cover_url)  # fetched into storage by the cover sweep, unless it has one
    audit.record("media.enriched", actor=actor, entity_type="media", entity_id=media.id,
                 details={"title": media.title, "provider": candidate.provider, "provider_id": candidate.provider_id,
                          "match_mode": match_mode, "score": score, "overwrite": overwrite, "filled": filled})
    return filled


def _fill_columns(media: Media, columns: dict[str, Any], overwrite: bool) -> list[str]:
    filled = []
    for name in FILL_COLUMNS:
        new, old = columns.get(name), getattr(media, name)
        if new in EMPTY or new == old:
            continue
        if old not in EMPTY and (not overwrite or name in NEVER_OVERWRITE):
            continue
        if name == "release_date" and media.year not in (None, new.year) and not overwrite:
            continue  # a date that contradicts the member's year would make the item invalid
        if name == "tmdb_id":
            media.tmdb_media_type = columns.get("tmdb_media_type")
        setattr(media, name, new)
        filled.append(name)
    if overwrite and media.release_date and media.year != media.release_date.year:
        media.year = media.release_date.year
    details = dict(media.type_details or {})
    added = {k: v for k, v in (columns.get("type_details") or {}).items()
             if details.get(k) in EMPTY or (overwrite and details.get(k) != v)}
    if added:
        media.type_details = {**details, **added}
        filled += [f"details.{k}" for k in added]
    return filled


def _fill_related(media: Media, incoming: Any, overwrite: bool) -> list[str]:
    filled = []
    if incoming.rating is not None and (media.rating is None or (overwrite and media.rating != incoming.rating)):
        media.rating = incoming.rating
        filled.append("rating")
    if incoming.cleaned.people and (not media.people or overwrite):
        set_people(media, incoming.cleaned.people)
        filled.append("people")
    if incoming.cleaned.genres and (not media.genres or overwrite):
        set_genres(media, incoming.cleaned.genres)
        filled.append("genres")
    if media.media_type == "tv_series" and _fill_seasons(media, incoming.seasons, overwrite):
        filled.append("seasons")
    return filled


def _fill_seasons(media: Media, seasons: list[tuple[int, int | None, int | None]], overwrite: bool) -> bool:
    """Each season's episode count; a season the item does not list yet is added (specials, season 0, are not)."""
    existing = {s.season_number: s for s in media.seasons}
    changed = False
    for number, _available, expected in seasons:
        row = existing.get(number)
        if row is None and number > 0:
            media.seasons.append(MediaSeason(season_number=number, expected_episodes=expected))
            changed = True
        elif row is not None and expected is not None and (row.expected_episodes is None or overwrite) \
                and row.expected_episodes != expected:
            row.expected_episodes = expected
            changed = True
    return changed


def _provider_ids(candidate: Candidate) -> dict[str, str]:
    """The provider's own id of the item (TMDB's is a column already)."""
    return {} if candidate.provider == "tmdb" else {f"{candidate.provider}_id": candidate.provider_id[:2000]}


def _fill_metadata(media: Media, values: dict[str, str], overwrite: bool) -> list[str]:
    rows = {row.key: row for row in db.session.scalars(select(MediaMetadata).where(
        MediaMetadata.media_id == media.id, MediaMetadata.key.in_(list(values))))} if values else {}
    filled = []
    for key, value in values.items():
        row = rows.get(key)
        if row is None:
            db.session.add(MediaMetadata(media_id=media.id, key=key[:100], value=value))
            filled.append(key)
        elif overwrite and row.value != value:
            row.value = value
            filled.append(key)
    return filled


# --- an import's items -------------------------------------------------------------------------------------------

RETRY_MARK = " — will retry"


@dataclass
class ImportPass:
    """What one enrichment pass over an import did."""

    counts: dict[str, int] = field(default_factory=dict)
    to_retry: int = 0
    retry_after: float | None = None  # the longest Retry-After a provider asked for


def _import_items(job_id: int, *, retry: bool) -> list[int]:
    """Items of the import's created/updated rows, in row order: all not enriched yet, or (retry) those whose
    enrichment failed and said it would retry."""
    from collectz.models import ImportRow

    query = select(ImportRow.media_id, ImportRow.enrichment).where(
        ImportRow.job_id == job_id, ImportRow.outcome.in_(("created", "updated")), ImportRow.media_id.is_not(None))
    seen: dict[int, None] = {}
    for media_id, note in db.session.execute(query.order_by(ImportRow.row_number)):
        wanted = (note or "").endswith(RETRY_MARK) if retry else note is None
        if wanted:
            seen.setdefault(media_id, None)
    return list(seen)


def imports_waiting(*, older_than: timedelta, within: timedelta = timedelta(days=1), limit: int = 50) -> list[int]:
    """Succeeded imports (finished between `within` and `older_than` ago) with items never handed to enrichment:
    Redis was down when they finished, or the worker died before the pass. Imports from before enrichment existed
    are older than `within` and stay as they are."""
    from collectz.models import ImportRow, SyncJob

    now = utcnow()
    return list(db.session.scalars(
        select(SyncJob.id).where(
            SyncJob.status == "succeeded", SyncJob.finished_at <= now - older_than,
            SyncJob.finished_at >= now - within,
            select(ImportRow.id).where(
                ImportRow.job_id == SyncJob.id, ImportRow.outcome.in_(("created", "updated")),
                ImportRow.media_id.is_not(None), ImportRow.enrichment.is_(None)).exists())
        .order_by(SyncJob.id).limit(limit)))


def enrich_import_items(job_id: int, *, retry: bool = False, last_try: bool = False) -> ImportPass:
    """Enrich the items an import created or updated and note on each row what happened. Per-item failures never
    fail anything: a provider failure that may pass is noted "— will retry" (unless `last_try`) for the caller to
    schedule the next pass."""
    from collectz.models import ImportRow

    outcome = ImportPass()
    run = Run()
    for media_id in _import_items(job_id, retry=retry):
        try:
            result = enrich_item(media_id, job_id=job_id, run=run)
        except Exception as exc:  # one item's surprise must not stop the others
            db.session.rollback()
            log.exception("enrichment of an item failed", extra={"fields": {"media_id": media_id}})
            result = EnrichmentResult("failed", reason=f"unexpected error ({exc.__class__.__name__})")
        again = result.retryable and not last_try
        outcome.counts[result.status] = outcome.counts.get(result.status, 0) + 1
        if again:
            outcome.to_retry += 1
            if result.retry_after is not None:
                outcome.retry_after = max(outcome.retry_after or 0.0, result.retry_after)
        db.session.execute(update(ImportRow).where(ImportRow.job_id == job_id, ImportRow.media_id == media_id)
                           .values(enrichment=result.summary(will_retry=again)))
        db.session.commit()
    return outcome


# --- the Review queue ---------------------------------------------------------------------------------------------


def open_review(media_id: int, scored: Sequence[Scored], reason: str, *, match_mode: str | None = None,
                job_id: int | None = None) -> EnrichmentReview:
    """A pending review of these candidates; an earlier pending review of the item is superseded (the caller
    commits)."""
    db.session.execute(update(EnrichmentReview).where(
        EnrichmentReview.media_id == media_id, EnrichmentReview.status == "pending").values(
        status="superseded", decided_at=utcnow()))
    review = EnrichmentReview(media_id=media_id, job_id=job_id, status="pending", reason=reason[:300],
                              match_mode=match_mode, candidates=[_entry(s) for s in scored])
    db.session.add(review)
    db.session.flush()
    return review


def _entry(scored: Scored) -> dict[str, Any]:
    return {"score": scored.score, "candidate": candidate_to_dict(scored.candidate)}


@dataclass
class ReviewView:
    """A review with its item and candidates, as the pages show them."""

    review: EnrichmentReview
    media: Media
    candidates: list[Scored]
    can_decide: bool


def _view(actor: User, review: EnrichmentReview, media: Media) -> ReviewView:
    scored = [Scored(float(e.get("score") or 0), candidate_from_dict(e["candidate"])) for e in review.candidates]
    return ReviewView(review, media, scored, review.status == "pending" and can_edit_media(actor, media))


def review_count() -> int:
    """Pending reviews (the nav badge)."""
    return db.session.scalar(select(func.count(EnrichmentReview.id)).where(
        EnrichmentReview.status == "pending")) or 0


def pending_reviews(actor: User, page: int = 1, per_page: int = 25) -> Page[ReviewView]:
    """Pending reviews, oldest first, with their items (three queries)."""
    total = review_count()
    page = max(1, min(page, max(1, -(-total // per_page))))
    rows = db.session.execute(select(EnrichmentReview, Media).join(Media, Media.id == EnrichmentReview.media_id)
                              .where(EnrichmentReview.status == "pending")
                              .order_by(EnrichmentReview.created_at, EnrichmentReview.id)
                              .offset((page - 1) * per_page).limit(per_page)
                              .options(selectinload(Media.people))).all()
    return Page([_view(actor, review, media) for review, media in rows], page, per_page, total)


def get_review(actor: User, review_id: int) -> ReviewView:
    """One review (any status) with its item, or NotFound."""
    review = db.session.get(EnrichmentReview, review_id)
    media = _load(review.media_id) if review is not None else None
    if review is None or media is None:
        raise NotFound("No such review.")
    return _view(actor, review, media)


def _pending_for_decision(actor: User, review_id: int) -> tuple[EnrichmentReview, Media]:
    require_writer(actor, "decide reviews")
    view = get_review(actor, review_id)
    require_media_edit(actor, view.media, "decide this review")
    if view.review.status != "pending":
        raise Conflict("This review has already been decided.")
    return view.review, view.media


def _decided(review: EnrichmentReview, actor: User, status: str, chosen: int | None = None) -> None:
    review.status, review.chosen_index = status, chosen
    review.decided_at, review.decided_by = utcnow(), actor.id


def accept(actor: User, review_id: int, candidate_index: int, *, overwrite: bool = False) -> EnrichmentResult:
    """Apply the chosen candidate (the suggested one is index 0) with the provider's full details; audited as
    `review.accepted` and `media.enriched`. A provider that fails now applies nothing (Conflict, try again)."""
    review, media = _pending_for_decision(actor, review_id)
    if not 0 <= candidate_index < len(review.candidates):
        raise InvalidInput("Choose one of the candidates.", fields={"candidate": "Choose one of the candidates."})
    entry = review.candidates[candidate_index]
    candidate = candidate_from_dict(entry["candidate"])
    run = Run()
    provider = _provider(run, candidate.provider, media.media_type)
    if provider is not None:
        try:
            candidate = run.call(provider, lambda: provider.details(candidate))
        except _Failed as failed:
            raise Conflict(f"Could not fetch the details ({failed.result.reason}); nothing was changed. "
                           "Try again in a moment.") from None
    mode = review.match_mode
    filled = apply_candidate(media, candidate, actor=actor, overwrite=overwrite, match_mode="review_accepted",
                             score=entry.get("score"))
    _decided(review, actor, "accepted", candidate_index)
    audit.record("review.accepted", actor=actor, entity_type="media", entity_id=media.id,
                 details={"review": review.id, "title": media.title, "candidate": candidate_index,
                          "suggested": candidate_index == 0, "provider": candidate.provider,
                          "provider_id": candidate.provider_id, "score": entry.get("score"), "filled": filled})
    db.session.commit()
    return EnrichmentResult("applied", mode, candidate.provider, entry.get("score"), filled=filled)


def search_again(actor: User, review_id: int, title: str, year: int | None = None) -> list[Scored]:
    """Search the item's providers with another title/year; the review's candidates become what was found
    (audited as `review.searched`). Conflict when no provider is on or one fails."""
    review, media = _pending_for_decision(actor, review_id)
    title = " ".join((title or "").split())
    if not title:
        raise InvalidInput("Enter a title to search for.", fields={"title": "Enter a title to search for."})
    if year is not None and not 1800 <= year <= 2100:
        raise InvalidInput("Enter a year between 1800 and 2100.", fields={"year": "Enter a year between 1800 and "
                                                                                  "2100."})
    run = Run()
    providers = run.providers(media.media_type)
    if not providers:
        raise Conflict(f"Searching is not possible: {_no_provider_reason(media.media_type)}.")
    query = dataclasses.replace(_query(media), title=title, year=year)
    try:
        found = _search(run, providers, query)
    except _Failed as failed:
        raise Conflict(f"The search failed ({failed.result.reason}). Try again in a moment.") from None
    facts = dataclasses.replace(ItemFacts.of(media), title=title, year=year if year is not None else media.year)
    scored = _unique(rank(facts, found))[:REVIEW_CANDIDATES]
    review.candidates = [_entry(s) for s in scored]
    review.reason = (f"searched again for “{title}”" + (f" ({year})" if year else ""))[:300]
    audit.record("review.searched", actor=actor, entity_type="media", entity_id=media.id,
                 details={"review": review.id, "title": title, "year": year, "found": len(scored)})
    db.session.commit()
    return scored


def keep_manual(actor: User, review_id: int) -> EnrichmentReview:
    """Keep the item as the member entered it; nothing is applied (audited as `review.kept_manual`)."""
    review, media = _pending_for_decision(actor, review_id)
    _decided(review, actor, "kept_manual")
    audit.record("review.kept_manual", actor=actor, entity_type="media", entity_id=media.id,
                 details={"review": review.id, "title": media.title, "candidates": len(review.candidates)})
    db.session.commit()
    return review


__all__ = ["AMBIGUITY_MARGIN", "EnrichmentResult", "ItemFacts", "ReviewView", "Run", "Scored", "accept",
           "apply_candidate", "candidate_from_dict", "candidate_to_dict", "enrich_import_items", "enrich_item",
           "get_review",
           "identifier_lookups", "is_ambiguous", "keep_manual", "open_review", "pending_reviews", "rank",
           "review_count", "score", "search_again", "threshold", "title_similarity"]
