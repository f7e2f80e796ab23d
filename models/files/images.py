"""A photo's copies: decoded and encoded again, so what we keep and serve carries no EXIF (the
citizen's GPS position, the camera's serial) and no bytes but the picture's own (a polyglot file
does not survive). Worker work: a 12-megapixel photo costs hundreds of milliseconds."""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import pillow_heif
from PIL import ExifTags, Image, ImageOps
from sqlmodel import Session, col, or_, select

from appealflow.models.files.attachments import Attachment, FileState, claim_photo
from appealflow.models.files.store import BlobStore
from appealflow.models.storage.columns import stored_id

log = logging.getLogger(__name__)

# HEIC (an iPhone's photos) through libheif, which pillow-heif's wheels carry: Pillow then opens it
# like any other format, and the copies are JPEG as for every photo.
pillow_heif.register_heif_opener()

# Above this many pixels a photo is refused unread: a small file that decodes to gigabytes (a
# decompression bomb). 50 megapixels is beyond any phone camera's photo.
MAX_PIXELS = 50_000_000
SCREEN = 2048  # the longer side of the copy shown on a page, at most (at least half of it, when larger)
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
                # A JPEG decodes straight at a scale of 1/2, 1/4 or 1/8, the smallest that keeps at
                # least half the screen copy's side: a phone's 12 megapixels come out 2016 pixels
                # long, which is the screen copy as it is, with a quarter of the decoding and no
                # resampling at all.
                size = opened.size
                longest = max(size)
                half = SCREEN // 2
                opened.draft("RGB", (max(1, size[0] * half // longest), max(1, size[1] * half // longest)))
                opened.load()
                turned = opened.size
                picture = ImageOps.exif_transpose(opened, in_place=False) if _turned(opened) else opened
                if picture.size != turned:  # turned a quarter: the photo's own size turns with it
                    size = size[::-1]
                screen, thumb = _encoded_copies(picture)  # while `opened` is open: it may be the picture
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning,
                Image.DecompressionBombError) as error:
            raise NotAPhoto(str(error)) from error
    return Copies(screen, thumb, *size)


def _encoded_copies(picture: Image.Image) -> tuple[bytes, bytes]:
    if picture.mode != "RGB":
        picture = picture.convert("RGB")
    screen = picture.copy() if max(picture.size) > SCREEN else picture
    screen.thumbnail((SCREEN, SCREEN))  # only when still larger than a screen copy
    thumb = screen.copy()  # from the screen copy: a fraction of the pixels to shrink
    thumb.thumbnail((THUMB, THUMB))
    return _jpeg(screen), _jpeg(thumb)


def _jpeg(picture: Image.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=85, optimize=True)  # no exif= given: none is written
    return out.getvalue()


def _turned(picture: Image.Image) -> bool:
    """Whether the photo's EXIF says to turn or mirror it to show it upright."""
    return picture.getexif().get(ExifTags.Base.Orientation, 1) != 1


def process_next(sessions: Callable[[], AbstractContextManager[Session]], store: BlobStore, *,
                 now: Callable[[], datetime], make: Callable[[bytes], Copies] = copies) -> str | None:
    """Make the copies of the next photo waiting for them: claimed in one short transaction, made
    with no transaction open (on SQLite an open one holds the write lock that intake needs), kept in
    another. The raw upload is forgotten once the copies exist. "processed" or "refused", or None
    when no photo waits."""
    with sessions() as session:
        claimed = claim_photo(session, now=now())
        if claimed is None:
            return None
        attachment_id, raw_key = stored_id(claimed), claimed.upload_key
    made: Copies | None = None
    try:
        made = make(store.get(raw_key)) if raw_key else None
    except KeyError:  # the bytes are gone (a collection, a lost volume): nothing to make copies of
        log.warning("attachment %s has no upload to process", attachment_id)
    except NotAPhoto as error:
        log.warning("attachment %s refused: %s", attachment_id, error)
    keys = (store.put(made.screen), store.put(made.thumb)) if made else None
    with sessions() as session:
        attachment = session.get(Attachment, attachment_id)
        if attachment is None or attachment.state != FileState.processing:
            return None
        if made is None or keys is None:
            attachment.state = FileState.refused
        else:
            attachment.file_key, attachment.thumb_key = keys
            attachment.width, attachment.height = made.width, made.height
            attachment.state = FileState.ready
        attachment.upload_key = None
        attachment.claimed_until = None
        session.add(attachment)
        session.flush()
        if raw_key and not _still_referenced(session, raw_key):
            store.delete(raw_key)
        return "processed" if made else "refused"


def _still_referenced(session: Session, key: str) -> bool:
    return session.exec(select(Attachment.id).where(or_(col(Attachment.upload_key) == key,
                                                        col(Attachment.file_key) == key,
                                                        col(Attachment.thumb_key) == key)).limit(1)).first() is not None
