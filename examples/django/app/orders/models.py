# SPDX-License-Identifier: GPL-3.0-or-later
from django.db import models


class Order(models.Model):
    item = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
    # Set by the Celery worker that fulfilled it: its host and release.
    fulfilled_by = models.CharField(max_length=100, blank=True)
    fulfilled_release = models.CharField(max_length=100, blank=True)

    def __str__(self):
        return "%s #%d" % (self.item, self.pk)


class Tick(models.Model):
    """One run of the scheduled task (app_timers enqueues it, the worker runs it)."""

    at = models.DateTimeField(auto_now_add=True)
    timer_host = models.CharField(max_length=100)  # where the timer fired
    worker_host = models.CharField(max_length=100)  # where the worker ran the task
    release = models.CharField(max_length=100)  # the worker's release
