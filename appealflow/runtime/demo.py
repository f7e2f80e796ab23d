"""A few appeals a city would see on a normal morning, posted through the API for the demo."""

import httpx

from appealflow.settings import get_settings

DEMO_APPEALS = [
    {"type": "complaint", "title": "工地夜间施工噪音扰民",
     "text": "小区旁边的工地每天晚上十一点以后还在施工，噪音很大，影响休息。",
     "location": {"district": "shinan", "street": "badaguan", "address": "八大关街道某小区"},
     "requester": {"name": "王先生", "phone": "13800000001", "email": "wang@demo.appealflow.local"}},
    {"type": "help_request", "title": "停水两天无人处理", "priority": "urgent",
     "text": "我家所在楼栋已经停水两天，没有任何通知，老人孩子生活困难。",
     "location": {"district": "shibei", "street": "taidong"},
     "requester": {"name": "李女士", "phone": "13800000002", "email": "li@demo.appealflow.local"}},
    {"type": "consultation", "title": "灵活就业人员如何缴纳社保",
     "text": "我是灵活就业人员，想咨询养老保险怎么缴纳，在哪里办理。", "channel": "hotline",
     "operator_id": "op-001",
     "requester": {"name": "张先生", "phone": "13800000003"}},
    {"type": "suggestion", "title": "建议增加公交线路",
     "text": "建议在新建小区附近增设公交站点和线路，方便居民出行。",
     "location": {"district": "licang"},
     "requester": {"phone": "13800000004", "email": "citizen4@demo.appealflow.local"}},
    {"type": "report", "title": "其他问题",
     "text": "想反映一个情况，不知道该找哪个部门。",
     "requester": {"phone": "13800000005", "email": "citizen5@demo.appealflow.local"}},
]


def post_demo_appeals(api_url: str) -> list[str]:
    codes = []
    with httpx.Client(base_url=api_url, timeout=30) as client:
        # A hotline appeal is filed by a signed-in operator: the demo operator account.
        signed_in = client.post("/auth/token", data={"username": "operator", "password": get_settings().demo_password})
        signed_in.raise_for_status()
        operator = {"Authorization": f"Bearer {signed_in.json()['access_token']}"}
        for i, body in enumerate(DEMO_APPEALS):
            as_operator = operator if body.get("channel") == "hotline" else {}
            response = client.post("/appeals", json=body, headers={"Idempotency-Key": f"demo-{i}", **as_operator})
            response.raise_for_status()
            codes.append(response.json()["code"])
    return codes
