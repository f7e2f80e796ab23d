"""Open appeals near a spot: what a citizen sees before filing ("already reported nearby: follow it
instead?"), and what duplicate detection weighs when both appeals have a position."""

from __future__ import annotations

import math

from sqlmodel import Session, col, select

from appealflow.models.appeals.appeal import Appeal
from appealflow.models.appeals.enums import OPEN_STATUSES, AppealStatus

EARTH_RADIUS_M = 6_371_000.0
NEARBY_M = 200.0
# Still being handled, or about to be: a matter someone will act on.
LIVE = (AppealStatus.received, AppealStatus.triage, *OPEN_STATUSES)


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine): exact enough at a city's scale."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def nearby_open(session: Session, lat: float, long: float, *, category: str | None,
                radius_m: float = NEARBY_M, limit: int = 5) -> list[dict]:
    """Open appeals of the same category (any, when none is given) within `radius_m`, nearest
    first. Only what anyone may see: the code, category, status, distance and day; no title, no
    text, nobody's details."""
    # A box around the spot narrows the rows; the exact distance decides.
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    query = select(Appeal).where(col(Appeal.status).in_(LIVE), col(Appeal.parent_id).is_(None),
                                 col(Appeal.latitude).between(lat - dlat, lat + dlat),
                                 col(Appeal.longitude).between(long - dlon, long + dlon))
    if category:
        query = query.where(col(Appeal.category_code) == category)
    found: list[tuple[float, dict]] = []
    for appeal in session.exec(query.limit(200)):
        assert appeal.latitude is not None and appeal.longitude is not None
        metres = distance_m(lat, long, appeal.latitude, appeal.longitude)
        if metres <= radius_m:
            found.append((metres, dict(code=appeal.code, category=appeal.category_code, status=appeal.status,
                                       distance_m=round(metres), received_on=appeal.received_at.date().isoformat())))
    return [shown for _, shown in sorted(found, key=lambda f: f[0])[:limit]]
