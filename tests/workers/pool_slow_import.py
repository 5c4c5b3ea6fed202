"""A handler module that takes far too long to import (tests the pool's
start_timeout_s)."""

import time

time.sleep(60.0)


def echo(request: dict) -> dict:
    return request
