# SPDX-License-Identifier: GPL-3.0-or-later
"""`manage.py enqueue_tick`: what the scheduled job (app_timers) runs; the worker does the work."""

import socket

from django.core.management.base import BaseCommand

from orders.tasks import tick


class Command(BaseCommand):
    help = "Enqueue the periodic tick task for the Celery worker."

    def handle(self, *args, **options):
        result = tick.delay(socket.gethostname())
        self.stdout.write("enqueued tick %s" % result.id)
