# SPDX-License-Identifier: GPL-3.0-or-later
from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
