"""Typed SQLAlchemy models, one aggregate per module; importing this registers them all."""

from collectz.models.audit import ActivityLog
from collectz.models.base import Base
from collectz.models.enrichment import EnrichmentReview
from collectz.models.jobs import ImportRow, SyncJob
from collectz.models.media import (
    CoverDownload,
    Genre,
    Library,
    Media,
    MediaGenre,
    MediaMetadata,
    MediaPerson,
    MediaSeason,
    MediaSource,
    MediaUserState,
    MediaVariant,
    Person,
)
from collectz.models.settings import AppIntegration, FeatureFlag
from collectz.models.tokens import ApiToken
from collectz.models.user import Invite, PasswordReset, User, UserSession

__all__ = [
    "ApiToken",
    "ActivityLog", "AppIntegration", "Base", "CoverDownload", "EnrichmentReview", "FeatureFlag", "Genre", "ImportRow",
    "Invite", "Library", "Media",
    "MediaGenre", "MediaMetadata", "MediaPerson", "MediaSeason", "MediaSource", "MediaUserState", "MediaVariant",
    "PasswordReset", "Person", "SyncJob", "User", "UserSession",
]
