"""Version 1.1's REST additions through the real server: the users directory,
display names, conversations with participants by last activity, cursor
pages, logout, and the page's session login with its CSRF check."""

import uuid

import pytest
import requests

from tests.support.client import conversation

pytestmark = pytest.mark.integration


def test_search_finds_active_users_by_any_part_of_username_or_display_name(make_user):
    tag = uuid.uuid4().hex[:6]
    alice, bob, carol = make_user(f"fa{tag}"), make_user(f"fb{tag}"), make_user("other")
    assert carol.api("PATCH", "/api/users/me/", {"displayName": f"FC{tag} Carol"}).json() == {
        "id": carol.id,
        "username": carol.username,
        "displayName": f"FC{tag} Carol",
        "online": False,
        "lastSeenAt": None,
    }
    found = alice.api("GET", "/api/users/", search=f"F{tag[:0]}").json()["results"]
    assert found and len(found) <= 20  # the default limit
    by_username = alice.api("GET", "/api/users/", search=f"FA{tag}").json()["results"]
    offline = {"online": False, "lastSeenAt": None}  # no socket open, none ever
    assert by_username == [{"id": alice.id, "username": alice.username, "displayName": "", **offline}]
    by_display_name = alice.api("GET", "/api/users/", search=f"fc{tag}").json()["results"]
    assert [u["id"] for u in by_display_name] == [carol.id]
    # Any part of a name: the tag is inside all three; the names that start with the text come first.
    inside = alice.api("GET", "/api/users/", search=tag).json()["results"]
    assert {u["id"] for u in inside} == {alice.id, bob.id, carol.id}
    assert [u["id"] for u in alice.api("GET", "/api/users/", search=f"c{tag}").json()["results"]] == [carol.id]
    assert [u["id"] for u in alice.api("GET", "/api/users/", search=f"fb{tag}", limit=1).json()["results"]] == [bob.id]
    assert bob.api("GET", f"/api/users/{carol.id}/").json()["displayName"] == f"FC{tag} Carol"
    assert bob.api("GET", "/api/users/me/").json() == {
        "id": bob.id,
        "username": bob.username,
        "displayName": "",
        **offline,
    }


def test_bad_directory_input_is_refused_and_changes_nothing(make_user):
    alice = make_user("alice")
    assert alice.api("PATCH", "/api/users/me/", {"displayName": "Alice A."}).status_code == 200
    for body in ({"displayName": "x" * 101}, {"displayName": 5}, {"displayName": "a\x07b"}, {}):
        response = alice.api("PATCH", "/api/users/me/", body)
        assert response.status_code == 400 and response.json()["code"] == "validation_error", body
    assert alice.api("GET", "/api/users/me/").json()["displayName"] == "Alice A."
    for params in ({"limit": "0"}, {"limit": "101"}, {"limit": "x"}, {"search": "s" * 151}):
        response = alice.api("GET", "/api/users/", **params)
        assert response.status_code == 400 and response.json()["code"] == "validation_error", params
    assert alice.api("GET", "/api/users/", limit="100").status_code == 200
    for user_id in ("999999999", "abc", "1" * 40):
        response = alice.api("GET", f"/api/users/{user_id}/")
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert requests.get(f"{alice.base}/api/users/", timeout=10).status_code == 401


def test_inactive_users_are_not_found(make_user, stack):
    alice, gone = make_user("alice"), make_user("gone")
    assert alice.api("GET", f"/api/users/{gone.id}/").status_code == 200
    stack.query("UPDATE auth_user SET is_active = false WHERE id = %s RETURNING id", int(gone.id))
    assert alice.api("GET", f"/api/users/{gone.id}/").status_code == 404
    assert alice.api("GET", "/api/users/", search=gone.username).json()["results"] == []


def test_conversations_carry_participants_and_come_by_last_activity_in_pages(make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    bob.api("PATCH", "/api/users/me/", {"displayName": "Bob B."})
    first = conversation(alice, bob)
    group = conversation(alice, bob, carol, title="trio")
    third = conversation(alice, carol)
    assert {p["id"]: p["displayName"] for p in first["participants"]} == {alice.id: "", bob.id: "Bob B."}
    assert [p["id"] for p in group["participants"]] == group["participantIds"]
    # A message moves the oldest conversation to the top.
    body = {"content": "up", "clientMessageId": "u1"}
    response = bob.api("POST", f"/api/conversations/{first['id']}/messages/", body)
    assert response.status_code == 201
    order = [first["id"], third["id"], group["id"]]
    # Version 1's shape: the whole list, a JSON array.
    assert [c["id"] for c in alice.api("GET", "/api/conversations/").json()] == order
    page = alice.api("GET", "/api/conversations/", cursor="", limit=2).json()
    assert [c["id"] for c in page["results"]] == order[:2] and page["next"]
    assert page["results"][0]["lastMessage"]["content"] == "up"
    rest = alice.api("GET", "/api/conversations/", cursor=page["next"], limit=2).json()
    assert [c["id"] for c in rest["results"]] == order[2:] and rest["next"] is None
    assert alice.api("GET", "/api/conversations/", cursor="").json()["next"] is None
    bad = alice.api("GET", "/api/conversations/", cursor="not-a-cursor")
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"


def test_logout_revokes_the_token(make_user):
    alice = make_user("alice")
    assert alice.api("GET", "/api/users/me/").status_code == 200
    assert alice.api("POST", "/api/auth/logout/").status_code == 204
    response = alice.api("GET", "/api/users/me/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_the_page_signs_in_with_a_session_and_out_with_its_csrf_token(make_user, base):
    alice = make_user("alice")
    password = "a long password 1"
    assert requests.post(f"{base}/api/auth/register/", json={"username": f"s{alice.username}", "password": password}).ok
    browser = requests.Session()
    page = browser.get(f"{base}/", timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["Content-Type"]
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    csrf = browser.cookies["csrftoken"]
    credentials = {"username": f"s{alice.username}", "password": password}
    refused = browser.post(f"{base}/api/auth/session/", json=credentials, timeout=10)
    assert refused.status_code == 403  # no CSRF token
    headers = {"X-CSRFToken": csrf, "Referer": f"{base}/"}
    wrong = browser.post(f"{base}/api/auth/session/", json={**credentials, "password": "no"}, headers=headers)
    assert wrong.status_code == 400 and wrong.json()["code"] == "validation_error"
    signed_in = browser.post(f"{base}/api/auth/session/", json=credentials, headers=headers, timeout=10)
    assert signed_in.status_code == 200 and signed_in.json()["username"] == f"s{alice.username}"
    assert browser.get(f"{base}/api/users/me/", timeout=10).status_code == 200
    headers["X-CSRFToken"] = browser.cookies["csrftoken"]  # login rotates it
    assert browser.post(f"{base}/api/auth/logout/", timeout=10).status_code == 403  # the session needs CSRF
    assert browser.post(f"{base}/api/auth/logout/", headers=headers, timeout=10).status_code == 204
    assert browser.get(f"{base}/api/users/me/", timeout=10).status_code in (401, 403)
