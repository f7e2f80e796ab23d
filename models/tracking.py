"""Public tracking codes, the requester's access token, and masking of personal data."""

import base64
import hashlib
import hmac
import secrets
from datetime import datetime

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O, 1/I: codes are read out on the phone


def new_tracking_code(now: datetime) -> str:
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(7))
    return f"{now:%y%m%d}-{suffix}"


def access_token(signing_key: bytes, code: str) -> str:
    """The requester's secret for one appeal, derived from the code so a retried intake can repeat it."""
    digest = hmac.new(signing_key, f"appeal-access:{code}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def token_matches(signing_key: bytes, code: str, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(access_token(signing_key, code), token)


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return phone
    return phone[:3] + "*" * max(len(phone) - 7, 1) + phone[-4:] if len(phone) > 7 else "*" * len(phone)


def mask_name(name: str | None) -> str | None:
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def mask_email(email: str | None) -> str | None:
    if not email or "@" not in email:
        return email
    local, domain = email.split("@", 1)
    return f"{local[0]}***@{domain}"
