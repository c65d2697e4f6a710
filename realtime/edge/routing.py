from django.urls import re_path

from realtime.edge.consumer import RealtimeConsumer

websocket_urlpatterns = [
    re_path(r"^realtime/?$", RealtimeConsumer.as_asgi()),
]
