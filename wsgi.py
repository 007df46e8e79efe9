"""What gunicorn serves: `gunicorn wsgi:app`."""

from marketplace import create_app_or_exit

app = create_app_or_exit()
