# SPDX-License-Identifier: GPL-3.0-or-later
"""The shop example: Django on PostgreSQL, with Celery on Redis."""

from .celery import app as celery_app

__all__ = ("celery_app",)
