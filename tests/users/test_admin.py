"""The user admin keeps the username rules: a case-only duplicate is a form error, not a server error."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

User = get_user_model()


@pytest.fixture
def admin_client_(db, client):
    client.force_login(User.objects.create_superuser(username="root", password="x"))
    return client


def change(client, user, username):
    url = reverse("admin:auth_user_change", args=[user.pk])
    form = {"username": username, "is_active": "on", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    return client.post(url, form)


def test_renaming_to_another_users_name_in_other_case_is_refused_and_changes_nothing(admin_client_):
    User.objects.create_user(username="ann", password="x")
    bob = User.objects.create_user(username="bob", password="x")
    answer = change(admin_client_, bob, "ANN")
    assert answer.status_code == 200  # the form again, with the error
    assert "is taken" in answer.content.decode()
    bob.refresh_from_db()
    assert bob.username == "bob"
    # The same form renames to a free name, and to its own name in other case.
    assert change(admin_client_, bob, "bobby").status_code == 302
    assert change(admin_client_, bob, "Bobby").status_code == 302
    bob.refresh_from_db()
    assert bob.username == "Bobby"


def test_adding_a_user_keeps_the_registration_rules(admin_client_):
    User.objects.create_user(username="ann", password="x")
    add = reverse("admin:auth_user_add")
    passwords = {"password1": "a long password 1", "password2": "a long password 1", "usable_password": "true"}
    for refused in ("Ann", "\u0430nn", "ann smith"):
        answer = admin_client_.post(add, {"username": refused, **passwords})
        assert answer.status_code == 200, refused
    assert admin_client_.post(add, {"username": "carol", **passwords}).status_code == 302
    assert sorted(User.objects.values_list("username", flat=True)) == ["ann", "carol", "root"]
