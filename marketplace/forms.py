from django import forms
from django.contrib.auth.forms import UserCreationForm

from .usernames import validate_username


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False)

    def clean_username(self):
        username = super().clean_username()
        if username:  # None: the parent already reported it (e.g. taken)
            validate_username(username)
        return username


class UploadForm(forms.Form):
    # Empty files reach the shared parser, so the web says what the API and CLI say.
    file = forms.FileField(allow_empty_file=True, help_text="JSONL, CSV or Parquet with prompt / chosen / rejected")


class EvalSetForm(forms.Form):
    name = forms.SlugField(max_length=100)
    file = forms.FileField(allow_empty_file=True)
