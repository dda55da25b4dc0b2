# SPDX-License-Identifier: GPL-3.0-or-later
"""The Celery app: `celery -A shop worker` runs the tasks of every installed app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
app = Celery("shop")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
