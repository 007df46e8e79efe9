"""Unbound extension singletons; bound to an app in create_app. Imports no domain code."""

from typing import TYPE_CHECKING

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from marketplace.core.api import Api
from marketplace.core.models import Base

db = SQLAlchemy(model_class=Base)
# The base class of every model. Flask-SQLAlchemy builds `db.Model` at run time as a subclass of `Base`, which a
# type checker cannot follow; to it, the models are plain `Base` classes, as they are to SQLAlchemy.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
api = Api()
limiter = Limiter(key_func=get_remote_address)
