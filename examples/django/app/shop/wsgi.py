# SPDX-License-Identifier: GPL-3.0-or-later
"""The WSGI entry point Gunicorn serves: shop.wsgi:application."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()
