# SPDX-License-Identifier: GPL-3.0-or-later
from django.contrib import admin
from django.urls import path

from orders import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health", views.health),
    path("slow", views.slow),
    path("orders/", views.create_order),
    path("orders/<int:order_id>", views.order),
    path("stats", views.stats),
]
