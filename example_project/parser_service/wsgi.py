"""The WSGI entry point of the parser service."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parser_service.settings")

application = get_wsgi_application()
