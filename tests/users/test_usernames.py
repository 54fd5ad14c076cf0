"""The database itself keeps usernames unique regardless of case."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from core.errors import ValidationFailed
from users.usernames import check_username, user_by_username


@pytest.mark.django_db
def test_the_database_refuses_a_name_that_differs_only_by_case():
    User = get_user_model()
    ann = User.objects.create_user(username="Ann", password="x")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username="aNN", password="x")
    User.objects.create_user(username="Anne", password="x")  # a different name goes in
    assert user_by_username("ANN") == ann


def test_names_are_normalised_then_limited_to_ascii():
    assert check_username("\uff41nn") == "ann"  # full-width letters are the ASCII ones
    assert check_username(" bob.smith+chat@example ") == "bob.smith+chat@example"
    for bad in ("\u0430nn", "ann smith", "", "a" * 151, "ann\x00"):
        with pytest.raises(ValidationFailed):
            check_username(bad)
