"""The Redis accessory, reached on the app's network by its name, with the password slipway's env file gives."""

import os
import threading

import redis

local = threading.local()


def redis_client():
    if getattr(local, "client", None) is None:
        local.client = redis.Redis(host=os.environ.get("REDIS_HOST", "redis"), password=os.environ["REDIS_PASSWORD"],
                                   socket_timeout=3, decode_responses=True)
    return local.client
