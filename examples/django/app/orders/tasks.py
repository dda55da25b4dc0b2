# SPDX-License-Identifier: GPL-3.0-or-later
"""Celery tasks, run by the app's worker process (app_processes)."""

import socket

from celery import shared_task
from django.conf import settings

from .models import Order, Tick


@shared_task
def fulfil(order_id):
    Order.objects.filter(pk=order_id).update(fulfilled_by=socket.gethostname(), fulfilled_release=settings.RELEASE)


@shared_task
def tick(timer_host):
    Tick.objects.create(timer_host=timer_host, worker_host=socket.gethostname(), release=settings.RELEASE)
