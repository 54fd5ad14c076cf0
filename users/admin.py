"""The user admin with the project's username rules: ASCII names, unique regardless of case.

Django's own change form checks uniqueness case by case only, so renaming
"bob" to "ANN" while "ann" exists would reach the database's LOWER(username)
index and fail as a server error; here it is a form error.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError

from core.errors import ValidationFailed

from .usernames import USERNAME_RULE, check_username, user_by_username

User = get_user_model()


def clean_username_field(form: UserChangeForm | AdminUserCreationForm) -> str:
    """Return the form's username checked by the project's rules; taken in any case by another user is an error."""
    try:
        name = check_username(form.cleaned_data.get("username") or "")
    except ValidationFailed:
        raise ValidationError(f"A username is {USERNAME_RULE}.") from None
    other = user_by_username(name)
    if other is not None and other.pk != form.instance.pk:
        raise ValidationError(f"The name {other.username!r} is taken; names differ by more than case.")
    return name


class ChatUserChangeForm(UserChangeForm):
    def clean_username(self) -> str:
        return clean_username_field(self)


class ChatUserCreationForm(AdminUserCreationForm):
    def clean_username(self) -> str:
        return clean_username_field(self)


admin.site.unregister(User)  # django.contrib.auth's, registered before this app's


@admin.register(User)
class ChatUserAdmin(UserAdmin):
    form = ChatUserChangeForm
    add_form = ChatUserCreationForm
