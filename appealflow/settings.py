"""All configuration, read from the environment, with defaults that work on a laptop."""

from __future__ import annotations

import os
import secrets
import time
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPEALFLOW_", extra="ignore")

    data_dir: Path = Path("var")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "APPEALFLOW_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "APPEALFLOW_REDIS_URL")
    )
    secret_key: str | None = None

    # Where notifications go: an Apprise mailto:// URL for e-mail targets, a template for SMS.
    smtp_url: str | None = None
    sms_url: str | None = None
    # Where citizens and staff open the links in messages (and the QR codes): this server as the
    # public reaches it.
    public_url: str = "http://127.0.0.1:8000"
    # The city's map service, for a position on the staff pages: a link only, nothing is loaded from it.
    map_url_template: str = "https://www.openstreetmap.org/?mlat={lat}&mlon={long}#map=18/{lat}/{long}"
    # The city's own tile server ("https://tiles.example.gov.cn/{z}/{x}/{y}.png"): with it the staff
    # appeal page draws a map with a pin (Leaflet, served from the installed XStatic-Leaflet package);
    # without it, no map and nothing loaded from anywhere else.
    map_tile_url: str = Field(default="", max_length=500, pattern=r"^(https?://[^\s\"'<>]*\{z\}[^\s\"'<>]*)?$")
    map_tile_attribution: str = Field(default="", max_length=200)
    # Per channel, in the `limits` notation, shared by every worker through Redis; each group bot
    # and webhook URL is counted on its own (WeCom and DingTalk bots take 20 messages a minute).
    # A gateway that sees a burst blocks the sender. E-mail goes to the city's own relay (one Postfix
    # takes several hundred small messages a second); 300/second leaves room for a 50 appeals/s
    # peak (three e-mails each). A relay with a lower quota (a cloud mail service) needs its own.
    delivery_rate_limit_email: str = "300/second"
    delivery_rate_limit_sms: str = "20/second"
    delivery_rate_limit_bot: str = "20/minute"
    delivery_rate_limit_webhook: str = "50/second"
    # A reply the requester has not rated within this long is closed as not rated.
    rating_timeout_hours: float = Field(default=72, gt=0)

    dispatch_batch_size: int = Field(default=500, ge=1, le=5000)
    dispatch_batch_wait_ms: int = Field(default=20, ge=0, le=5000)
    routing_min_confidence: float = Field(default=0.5, ge=0, le=1)
    # The routing model's embedding backend ("e5", "chargram"), or "off" for keyword rules alone (they
    # stay the fallback when the model cannot load); zero-shot category vectors are cached under
    # model_cache_dir (built once per machine). On by default: it routes 86.6% right with 0.9%
    # silently wrong where the keyword rules route 63.8% with 16.9% wrong.
    routing_model: str = Field(default="e5", pattern=r"^(e5|chargram|off)$")
    # How long dispatch leaves an operator's consultation alone while they answer it on the spot.
    answer_hold_seconds: int = Field(default=300, ge=10, le=3600)
    # Whether a requester may keep their name from the department (where the city's rules allow it).
    allow_name_withheld: bool = True
    # What the confirmation page promises for an appeal routing could not place: a dispatcher routes it
    # within this many working hours (the centre's published promise).
    triage_within_working_hours: int = Field(default=2, ge=1, le=72)
    model_cache_dir: Path = Path.home() / ".cache" / "appealflow"
    # Dispatch records each new appeal's probable duplicates among open ones and routes it as its
    # twin went. Only appeals sharing a named place with an open one are embedded.
    duplicates_at_intake: bool = True
    claim_lease_seconds: int = Field(default=30, ge=1)
    reconcile_interval_seconds: float = Field(default=2.0, gt=0)
    delivery_batch_size: int = Field(default=200, ge=1)
    delivery_concurrency: int = Field(default=8, ge=1, le=64)
    delivery_max_attempts: int = Field(default=8, ge=1)
    delivery_backoff_seconds: float = Field(default=2.0, gt=0)
    # Every send gives up after this long (connect and each read), so a hung server costs a
    # delivery thread this much per message and no more.
    notify_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    worker_ttl_seconds: int = Field(default=15, ge=5)

    max_body_bytes: int = 64 * 1024
    # Photos and PDFs: each file up to this size, an appeal up to max_files_per_appeal of them.
    max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_files_per_appeal: int = Field(default=20, ge=1, le=200)
    # Where file bytes live: empty for the data folder's files/, or s3://bucket/prefix?endpoint=URL
    # for a store all hosts share (credentials from the AWS_* variables, as boto3 reads them).
    file_store: str = ""
    # A client must send a request's headers within this long of connecting (or of the last answer
    # on its connection), and its body within the second: slow clients are cut off, not waited for.
    request_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    request_body_timeout_seconds: float = Field(default=30.0, gt=0, le=600)

    # Per client IP (sign-in also per username), in the `limits` notation: "N/second|minute|hour",
    # several separated by ";". Off only for test suites that post thousands of appeals from one host.
    rate_limits_enabled: bool = True
    rate_limit_intake: str = "20/minute;200/day"
    rate_limit_tracking: str = "120/minute"
    rate_limit_policy_search: str = "60/minute"
    rate_limit_sign_in: str = "30/minute"
    rate_limit_sign_in_user: str = "10/minute"
    # Follow-up by code + the phone's last four digits: few tries per address and per code.
    rate_limit_tracking_phone: str = "10/hour"
    # Short links in text messages (/s/KEY): every open counts, so guessing keys stops early.
    rate_limit_short_link: str = "30/minute;300/day"

    log_level: str = "WARNING"
    log_format: Literal["logfmt", "json"] = "logfmt"
    demo_password: str = "demo-pass-12345"
    new_password: str | None = None  # `appealflow user add` takes it from here when not given
    # Tests and demos only: a file holding seconds that every process adds to "now".
    clock_file: Path | None = None

    # Working-day calendar: hours are local to the zone; holidays come from the `holidays` package
    # plus the calendar_override table.
    working_hours: str = "09:00-17:00"
    timezone: str = "Asia/Shanghai"
    sweep_interval_seconds: int = Field(default=60, ge=5)
    # How often the scheduler collects stored file bytes no attachment refers to (flows/housekeeping.py).
    file_collection_interval_seconds: int = Field(default=3600, ge=5)

    @property
    def send_margin(self) -> timedelta:
        """What one send may take: a connect and a read timeout, and some slack. A worker sends only
        while its claim outlasts this (renewing it first)."""
        return timedelta(seconds=2 * self.notify_timeout_seconds + 5)

    @property
    def takeover_grace(self) -> timedelta:
        """How long a lapsed outbox claim is left to its worker before another may take the row: the
        same margin, so a worker that renewed, then was held up by a busy machine mid-send, finishes
        that send (and marks it) before the row can be sent again."""
        return self.send_margin

    @property
    def embedding_backend(self) -> str:
        """What texts are compared with (duplicates, the Q&A base): the routing model's backend, or e5
        while dispatch routes by the rules alone."""
        return "e5" if self.routing_model == "off" else self.routing_model

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url or f"sqlite:///{self.data_dir.resolve() / 'appealflow.db'}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    def signing_key(self) -> bytes:
        """The secret that signs access tokens; made once per data folder when not configured."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        # Once written the file never changes; reading it on every call was an eighth of intake's
        # Python (every response carries a token).
        if (known := _signing_keys.get(str(path))) is not None:
            return known
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        for _ in range(100):  # another process may be between creating and writing it
            key = path.read_text().strip()
            if key:
                return _signing_keys.setdefault(str(path), key.encode())
            time.sleep(0.01)
        raise RuntimeError(f"{path} is empty")


_signing_keys: dict[str, bytes] = {}


@lru_cache
def get_settings() -> Settings:
    return Settings()
