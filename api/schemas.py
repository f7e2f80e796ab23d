"""What the intake and tracking endpoints take and give."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from appealflow.models.appeals.enums import AppealType, Channel, Priority
from appealflow.models.appeals.intake import NewAppeal
from appealflow.models.appeals.privacy import NOTICE_VERSION

# Tracking codes as issued (261127-K7Q9XMA), loosely: a mistyped code is simply not found.
CODE_PATTERN = r"^[0-9A-Za-z-]{1,20}$"
Code = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z0-9_]{1,60}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Location(BaseModel):
    model_config = ConfigDict(extra="forbid")
    district: Code | None = None
    street: Code | None = None
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    long: Annotated[float, Field(ge=-180, le=180)] | None = None
    accuracy_m: Annotated[float, Field(ge=0, le=100_000)] | None = Field(
        default=None, description="how far off the position may be, in metres (the phone says)")

    @model_validator(mode="after")
    def _both_or_neither(self) -> "Location":
        if (self.lat is None) != (self.long is None):
            raise ValueError("lat and long go together: give both or neither")
        return self


class Requester(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\+?[0-9][0-9 -]{5,24}$")] | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, max_length=254,
                                            pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


class AppealIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: Channel = Channel.web
    type: AppealType
    priority: Priority = Priority.normal
    category: Code | None = None
    title: Annotated[Text, Field(max_length=200)]
    text: Annotated[Text, Field(max_length=5000)]
    location: Location = Location()
    requester: Requester
    operator_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    # What the requester reads (messages, their tracking view): chosen, or English for an appeal
    # written without Chinese, else Chinese.
    language: Literal["zh", "en"] | None = None
    # An operator's consultation they answer on the spot: dispatch waits for them (a short hold).
    answer_now: bool = False
    anonymous: bool = Field(default=False, description=(
        "no phone and no e-mail, on purpose: no message is sent; the code and the tracking link are the "
        "only way to follow it"))
    name_withheld: bool = Field(default=False, description="keep the requester's name from the department")
    privacy_consent: bool = Field(default=False, description=(
        "the requester agreed to the privacy notice (GET /reference/privacy); its version is recorded"))

    def to_new(self, operator_id: str | None = None) -> NewAppeal:
        """The appeal as the domain receives it: the one mapping the JSON API, the pages (through
        the API) and Open311 share. `operator_id` is the signed-in operator's, never the body's."""
        return NewAppeal(
            channel=self.channel, appeal_type=self.type, priority=self.priority, title=self.title, text=self.text,
            category_code=self.category, district=self.location.district, street=self.location.street,
            address=self.location.address, requester_name=self.requester.name, requester_phone=self.requester.phone,
            requester_email=self.requester.email, operator_id=operator_id, language=self.language,
            anonymous=self.anonymous, name_withheld=self.name_withheld,
            privacy_notice=NOTICE_VERSION if self.privacy_consent else None,
            latitude=self.location.lat, longitude=self.location.long,
            position_accuracy_m=self.location.accuracy_m if self.location.lat is not None else None,
        )


class AppealCreated(BaseModel):
    code: str
    access_token: str
    status: str
    language: str
    tracking_url: str = Field(description="opens the appeal: it holds the access token")
    qr_png_url: str
    qr_svg_url: str


class Department(BaseModel):
    code: str
    name_zh: str
    name_en: str


class Event(BaseModel):
    kind: str
    at: datetime
    actor: str
    from_status: str | None
    to_status: str | None
    detail: dict


class Deadlines(BaseModel):
    accept_due_at: datetime | None
    contact_due_at: datetime | None
    resolve_due_at: datetime | None


class AppealOut(BaseModel):
    code: str
    channel: str
    type: str
    priority: str
    category: str | None
    title: str
    text: str
    location: Location
    requester: Requester
    status: str
    version: int
    department: Department | None
    assisting: list[Department]
    deadlines: Deadlines
    received_at: datetime
    language: str
    anonymous: bool = Field(default=False, description="no contact: no message goes to the requester")
    history: list[Event]
    # The same, as the requester reads it: labels and times in their language, departments by name.
    view: dict


class RatingForm(BaseModel):
    """What the rating link shows: the question and how to answer it."""

    code: str
    status: str
    can_rate: bool
    reply: str | None
    question: str
    satisfaction: dict[str, str]
    post_to: str
    example: dict
