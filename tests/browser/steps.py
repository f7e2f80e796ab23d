"""Steps the browser tests share: signing in on the staff page, filling the filing form."""

import re

from tests.staff import PASSWORD


def sign_in(page, username: str, password: str = PASSWORD) -> None:
    """From the keyboard, as staff do; lands on the queue or the dashboard."""
    page.goto("/staff/sign-in")
    page.get_by_label(re.compile("用户名|Username")).fill(username)
    page.get_by_label(re.compile("密码|Password")).fill(password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/(work|supervise)"))


def fill_filing(page, *, title: str, text: str, phone: str) -> None:
    """The filing form's place (市南区八大关), words and phone; not submitted."""
    page.select_option("#district", "shinan")
    page.select_option("#street", "badaguan")
    page.fill("#title", title)
    page.fill("#text", text)
    page.fill("#phone", phone)
