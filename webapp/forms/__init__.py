"""Forms at the HTTP edge (Flask-WTF): one class per page, reading what a request carries
and handing the services typed values."""

from webapp.forms.apikeys import NewAppKeyForm
from webapp.forms.auth import LoginForm, SetupForm
from webapp.forms.base import DeleteForm, Form, RecordForm, add_errors, save_form
from webapp.forms.chat import RenameForm
from webapp.forms.models import ModelForm, ModelListQuery
from webapp.forms.presets import PresetForm
from webapp.forms.providers import ImportForm, ProviderForm
from webapp.forms.users import AccountPasswordForm, NewUserForm, ResetPasswordForm, RoleForm

__all__ = [
    "AccountPasswordForm",
    "DeleteForm",
    "Form",
    "ImportForm",
    "LoginForm",
    "ModelForm",
    "ModelListQuery",
    "NewAppKeyForm",
    "NewUserForm",
    "PresetForm",
    "ProviderForm",
    "RecordForm",
    "RenameForm",
    "ResetPasswordForm",
    "RoleForm",
    "SetupForm",
    "add_errors",
    "save_form",
]
