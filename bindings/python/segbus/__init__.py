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

    _send = _ext.sbpy_send

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


# The six calls go straight to the C function with the default client's handle (one Python
# frame per call: this is the hot path analytics-python users hit).
def track(user_id=None, event=None, properties=None, context=None, timestamp=None,
          anonymous_id=None, integrations=None, message_id=None):
    """Record a track event; returns (success, message as sent)."""
    c = default_client or _client()
    r = _send(c._h, 1, user_id, anonymous_id, event, None, properties, context, timestamp,
              integrations, message_id)
    if r is not None and r[0]:
        return r
    return c._retry_or_report(r, 1, user_id, anonymous_id, event, None, properties, context,
                              timestamp, integrations, message_id)


def identify(user_id=None, traits=None, context=None, timestamp=None, anonymous_id=None,
             integrations=None, message_id=None):
    """Record an identify event; returns (success, message as sent)."""
    return (default_client or _client()).identify(user_id, traits, context, timestamp,
                                                  anonymous_id, integrations, message_id)


def group(user_id=None, group_id=None, traits=None, context=None, timestamp=None,
          anonymous_id=None, integrations=None, message_id=None):
    """Record a group event; returns (success, message as sent)."""
    return (default_client or _client()).group(user_id, group_id, traits, context, timestamp,
                                               anonymous_id, integrations, message_id)


def alias(previous_id=None, user_id=None, context=None, timestamp=None, integrations=None,
          message_id=None):
    """Record an alias event; returns (success, message as sent)."""
    return (default_client or _client()).alias(previous_id, user_id, context, timestamp,
                                               integrations, message_id)


def page(user_id=None, category=None, name=None, properties=None, context=None, timestamp=None,
         anonymous_id=None, integrations=None, message_id=None):
    """Record a page event; returns (success, message as sent)."""
    c = default_client or _client()
    r = _send(c._h, 3, user_id, anonymous_id, name, category, properties, context, timestamp,
              integrations, message_id)
    if r is not None and r[0]:
        return r
    return c._retry_or_report(r, 3, user_id, anonymous_id, name, category, properties, context,
                              timestamp, integrations, message_id)


def screen(user_id=None, category=None, name=None, properties=None, context=None,
           timestamp=None, anonymous_id=None, integrations=None, message_id=None):
    """Record a screen event; returns (success, message as sent)."""
    return (default_client or _client()).screen(user_id, category, name, properties, context,
                                                timestamp, anonymous_id, integrations, message_id)


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
