"""Unbound extension singletons; bound to an app in create_app. Imports no domain code."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from marketplace.core.api import Api
from marketplace.core.models import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
api = Api()
limiter = Limiter(key_func=get_remote_address)
