# SPDX-License-Identifier: GPL-3.0-or-later
import json
import os
import time

from django.conf import settings
from django.db import connection, transaction
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import Order, Tick
from .tasks import fulfil


@require_GET
def health(request):
    """Healthy when the database answers: the rollout's health check proves the release reaches it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "release": settings.RELEASE, "version": settings.APP_VERSION,
                         "pid": os.getpid()})


@require_GET
def slow(request):
    """A request that takes a while (at most 30 s): in flight while a rollout reloads the workers."""
    seconds = min(max(float(request.GET.get("seconds", 1.0)), 0.0), 30.0)
    time.sleep(seconds)
    return JsonResponse({"slept": seconds, "version": settings.APP_VERSION})


@csrf_exempt  # an API for the tests; the admin keeps CSRF
@require_POST
def create_order(request):
    item = json.loads(request.body or b"{}").get("item", "widget")
    order = Order.objects.create(item=item)
    transaction.on_commit(lambda: fulfil.delay(order.pk))
    return JsonResponse({"id": order.pk, "release": settings.RELEASE}, status=201)


@require_GET
def order(request, order_id):
    found = Order.objects.filter(pk=order_id).values("id", "item", "fulfilled_by", "fulfilled_release").first()
    if found is None:
        raise Http404("no such order")
    return JsonResponse(found)


@require_GET
def stats(request):
    last = Tick.objects.order_by("-at").values("at", "timer_host", "worker_host", "release").first()
    return JsonResponse({"orders": Order.objects.count(), "ticks": Tick.objects.count(), "last_tick": last,
                         "release": settings.RELEASE})
