"""Appeals written straight into the database, as the API would leave them."""

from appealflow.models.appeals.intake import NewAppeal, receive
from appealflow.models.storage.columns import utcnow
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings

KINDS = [
    ("工地夜间施工噪音", "每天晚上施工噪音很大", "shinan", "badaguan"),
    ("停水两天", "小区停水两天没有通知", "shibei", "taidong"),
    ("一个问题", "请问这件事应该找谁", None, None),
]


def received_appeals(count: int) -> None:
    """`count` received appeals, in one transaction."""
    with session_scope(get_settings().sqlalchemy_url) as session:
        for n in range(count):
            title, text, district, street = KINDS[n % len(KINDS)]
            receive(session, NewAppeal(
                channel="web", appeal_type="complaint", priority="normal", title=title, text=text,
                district=district, street=street, requester_phone=f"1390000{n:04d}",
                requester_email=f"r{n}@example.test"), now=utcnow(), actor="requester")
