from django import forms
from django.contrib.auth.forms import UserCreationForm


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=False)


class UploadForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV or Parquet with prompt / chosen / rejected")


class EvalSetForm(forms.Form):
    name = forms.SlugField(max_length=100)
    file = forms.FileField()
