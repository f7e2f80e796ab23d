"""A photo's copies: decoded and encoded again, so what we keep and serve carries no EXIF (the
citizen's GPS position, the camera's serial) and no bytes but the picture's own (a polyglot file
does not survive). Worker work: a 12-megapixel photo costs hundreds of milliseconds."""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from datetime import datetime

from PIL import Image, ImageOps
from sqlmodel import Session

from appealflow.models.files.attachments import Attachment, FileState, waiting_photos
from appealflow.models.files.store import BlobStore

log = logging.getLogger(__name__)

# Above this many pixels a photo is refused unread: a small file that decodes to gigabytes (a
# decompression bomb). 50 megapixels is beyond any phone camera's photo.
MAX_PIXELS = 50_000_000
SCREEN = 1600  # the longer side of the copy shown on a page
THUMB = 320


@dataclass(frozen=True)
class Copies:
    screen: bytes
    thumb: bytes
    width: int
    height: int


class NotAPhoto(ValueError):
    pass


def copies(data: bytes) -> Copies:
    """The screen-size and thumbnail copies, as JPEG without metadata; NotAPhoto if it will not decode."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as opened:
                if opened.width * opened.height > MAX_PIXELS:
                    raise NotAPhoto(f"{opened.width}x{opened.height} pixels is over {MAX_PIXELS}")
                opened.load()
                picture = ImageOps.exif_transpose(opened)  # upright, as the phone showed it
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as error:
            raise NotAPhoto(str(error)) from error
    picture = picture.convert("RGB")

    def encoded(longest: int) -> bytes:
        copy = picture.copy()
        copy.thumbnail((longest, longest))
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=85, optimize=True)  # no exif= given: none is written
        return out.getvalue()

    return Copies(encoded(SCREEN), encoded(THUMB), picture.width, picture.height)


def process_waiting(session: Session, store: BlobStore, *, now: datetime, limit: int = 20) -> dict:
    """Make the copies of photos waiting for them; the raw upload is forgotten once they exist."""
    done = refused = 0
    for attachment in waiting_photos(session, limit):
        raw_key = attachment.upload_key
        try:
            made = copies(store.get(raw_key)) if raw_key else None
        except KeyError:
            session.refresh(attachment)  # another worker made the copies and let the upload go
            if attachment.state != FileState.processing:
                continue
            made = None
        except NotAPhoto as error:
            log.warning("attachment %s refused: %s", attachment.id, error)
            made = None
        if made is None:
            attachment.state = FileState.refused
            refused += 1
        else:
            attachment.file_key, attachment.thumb_key = store.put(made.screen), store.put(made.thumb)
            attachment.width, attachment.height = made.width, made.height
            attachment.state = FileState.ready
            done += 1
        attachment.upload_key = None
        session.add(attachment)
        session.flush()
        if raw_key and not _still_referenced(session, raw_key):
            store.delete(raw_key)
    return {"processed": done, "refused": refused}


def _still_referenced(session: Session, key: str) -> bool:
    from sqlmodel import col, or_, select

    return session.exec(select(Attachment.id).where(or_(col(Attachment.upload_key) == key,
                                                        col(Attachment.file_key) == key,
                                                        col(Attachment.thumb_key) == key)).limit(1)).first() is not None
