"""segbus: Segment-style analytics over a shared-memory ring; a drop-in for analytics-python 2.x.

    import segbus as analytics
    analytics.write_key = "..."
    analytics.track("user-1", "Order Completed", {"total": 129.98})

The module-level settings and calls are analytics-python's; see docs/python.md.
"""
import decimal as _decimal
import enum as _enum
import uuid as _uuid

from . import _segbus_ext as _ext

_ext.sbpy_setup(_decimal.Decimal, _uuid.UUID, _enum.Enum)

if hasattr(_ext, "sbpy_send"):  # the event calls (absent only while the C API is being built)
    from .client import Client, SegbusError  # noqa: E402  (needs the setup above)


__version__ = VERSION = "0.1.0"

# analytics-python's module-level settings, read when the default client is first needed.
write_key = None
host = None
on_error = None
debug = False
send = True
sync_mode = False
max_queue_size = 10000
gzip = False
timeout = 15
max_retries = 10
proxies = None
thread = 1
upload_interval = 0.5
upload_size = 100
# segbus's own
socket = None
strict = False
full_policy = "error"

default_client = None


def _client():
    global default_client
    if default_client is None:
        default_client = Client(write_key, host=host, debug=debug, max_queue_size=max_queue_size,
                                send=send, on_error=on_error, gzip=gzip, max_retries=max_retries,
                                sync_mode=sync_mode, timeout=timeout, proxies=proxies,
                                socket=socket, strict=strict, full_policy=full_policy)
    return default_client


def _fallback(r, *args):
    """A module-level call the ring did not take, or whose client was closed: the Client's own
    handling (warning, on_error, reopening)."""
    return _client()._retry_or_report(r, *args)


# The six calls: C functions with analytics-python's signatures and defaults (track(user_id=None,
# event=None, properties=None, context=None, timestamp=None, anonymous_id=None, integrations=None,
# message_id=None) and so on) that use default_client directly: no Python frame on the hot path.
if hasattr(_ext, "sbpy_module_functions"):
    _calls = _ext.sbpy_module_functions(globals(), _client, _fallback)
    track = _calls["track"]
    identify = _calls["identify"]
    group = _calls["group"]
    alias = _calls["alias"]
    page = _calls["page"]
    screen = _calls["screen"]
    del _calls


def flush(timeout=None):
    """Wait until the daemon holds every event recorded so far (see Client.flush)."""
    return _client().flush(timeout)


def join():
    """As analytics-python's join(): waits like flush()."""
    return _client().join()


def shutdown():
    """flush() then close the default client."""
    return _client().shutdown()


def to_msgpack(value, strict=False):
    """Convert value as an event field is converted: (bytes or None, [warning, ...] or None)."""
    return _ext.sbpy_pack(value, bool(strict))


def dropped_values():
    """How many values were dropped as unserialisable since import, over all clients."""
    return _ext.sbpy_dropped()
