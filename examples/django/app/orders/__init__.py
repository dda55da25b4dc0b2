# SPDX-License-Identifier: GPL-3.0-or-later
"""Orders: a model the web app writes and the Celery worker fulfils."""
