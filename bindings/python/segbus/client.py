"""segbus.client: the Client class, with analytics-python 2.x's constructor and calls.

Every call checks its arguments as analytics-python does, converts properties/traits/context/
integrations to msgpack in C and copies the event into the shared ring that the segbusd sidecar
drains: no queue, no thread, no HTTP in the application process, so nothing is lost at exit and
fork() needs no care. See docs/python.md.
"""
import logging
from datetime import datetime, timezone

from . import _segbus_ext as _c

_send = _c.sbpy_send
log = logging.getLogger("segbus")

# enum segbus_type and enum segbus_full_policy of segbus.h
TRACK, IDENTIFY, PAGE, SCREEN, GROUP, ALIAS = range(1, 7)
_POLICIES = {"error": 0, "block": 1, "drop": 2}
_SEND, _SYNC = 1, 2
_ETIMEDOUT = -10013  # -SEGBUS_ETIMEDOUT


class SegbusError(Exception):
    """A call whose event the ring could not take (full, dropped, no daemon, flush timeout)."""


def _format_timestamp(ts):
    """analytics-python's rule: a naive datetime within 5 s of local now is local time, any
    other naive one is UTC; then ISO 8601 with milliseconds."""
    if ts.tzinfo is None or ts.tzinfo.utcoffset(ts) is None:
        if (datetime.now() - ts).total_seconds() < 5:
            ts = ts.astimezone()
        else:
            ts = ts.replace(tzinfo=timezone.utc)
    return ts.isoformat(timespec="milliseconds")


def _warn_dropped(warnings):
    for text in warnings:
        log.warning("segbus: value dropped: %s", text)


_c.sbpy_client_setup(_format_timestamp, _warn_dropped)


class Client(object):
    """A segbus client, built like analytics-python's Client.

    analytics-python's keywords are all accepted; those about its HTTP queue (host, gzip,
    max_queue_size, flush_at, flush_interval, max_retries, thread, proxies, oauth_*) have no
    effect here: the segbusd sidecar owns delivery (its configuration says where to). timeout is
    the deadline, in seconds, of sync_mode's wait for the daemon.

    segbus's own keywords: socket (the daemon's UNIX socket; default $SEGBUS_SOCKET, then
    /run/segbus/segbus.sock), strict (raise TypeError for a value with no JSON form instead of
    dropping it with a warning), full_policy ('error': return (False, msg) when the ring is
    full, like analytics-python's full queue; 'block': wait up to block_ms; 'drop'), standalone
    (start on a ring of its own when no daemon runs; a daemon adopts it later).
    """

    def __init__(self, write_key=None, host=None, debug=False, max_queue_size=10000, send=True,
                 on_error=None, flush_at=100, flush_interval=0.5, gzip=False, max_retries=10,
                 sync_mode=False, timeout=15, thread=1, proxies=None, oauth_client_id=None,
                 oauth_client_key=None, oauth_key_id=None, oauth_auth_server=None,
                 oauth_scope=None, *, socket=None, strict=False, full_policy="error",
                 block_ms=0, standalone=True):
        if write_key is not None and not isinstance(write_key, str):
            raise AssertionError("write_key must have <class 'str'>, got: %r" % (write_key,))
        if full_policy not in _POLICIES:
            raise ValueError("full_policy must be one of %s, got: %r"
                             % (", ".join(sorted(_POLICIES)), full_policy))
        self.write_key = write_key
        self.host = host
        self.on_error = on_error
        self.debug = debug
        self.send = send
        self.sync_mode = sync_mode
        self.timeout = timeout
        self.strict = strict
        self.log = log
        if debug:
            log.setLevel(logging.DEBUG)
            if not log.handlers:
                log.addHandler(logging.StreamHandler())
        self._open_args = (socket, write_key, _POLICIES[full_policy], int(block_ms),
                           1 if standalone else 0, 1 if strict else 0,
                           (_SEND if send else 0) | (_SYNC if sync_mode else 0),
                           int(timeout * 1000) if timeout is not None else -1)
        self._h = _c.sbpy_client_open(*self._open_args)

    # -- the six calls, with analytics-python's argument order ------------------------------

    def track(self, user_id=None, event=None, properties=None, context=None, timestamp=None,
              anonymous_id=None, integrations=None, message_id=None):
        r = _send(self._h, TRACK, user_id, anonymous_id,
                         event, None, properties, context, timestamp, integrations, message_id)
        if r is not None and r[0]:
            return r
        return self._retry_or_report(r, TRACK, user_id, anonymous_id, event, None, properties,
                                     context, timestamp, integrations, message_id)

    def identify(self, user_id=None, traits=None, context=None, timestamp=None,
                 anonymous_id=None, integrations=None, message_id=None):
        r = _send(self._h, IDENTIFY, user_id, anonymous_id,
                         None, None, traits, context, timestamp, integrations, message_id)
        if r is not None and r[0]:
            return r
        return self._retry_or_report(r, IDENTIFY, user_id, anonymous_id, None, None, traits,
                                     context, timestamp, integrations, message_id)

    def group(self, user_id=None, group_id=None, traits=None, context=None, timestamp=None,
              anonymous_id=None, integrations=None, message_id=None):
        r = _send(self._h, GROUP, user_id, anonymous_id,
                         group_id, None, traits, context, timestamp, integrations, message_id)
        if r is not None and r[0]:
            return r
        return self._retry_or_report(r, GROUP, user_id, anonymous_id, group_id, None, traits,
                                     context, timestamp, integrations, message_id)

    def alias(self, previous_id=None, user_id=None, context=None, timestamp=None,
              integrations=None, message_id=None):
        r = _send(self._h, ALIAS, user_id, None, previous_id,
                         None, None, context, timestamp, integrations, message_id)
        if r is not None and r[0]:
            return r
        return self._retry_or_report(r, ALIAS, user_id, None, previous_id, None, None, context,
                                     timestamp, integrations, message_id)

    def page(self, user_id=None, category=None, name=None, properties=None, context=None,
             timestamp=None, anonymous_id=None, integrations=None, message_id=None):
        r = _send(self._h, PAGE, user_id, anonymous_id, name,
                         category, properties, context, timestamp, integrations, message_id)
        if r is not None and r[0]:
            return r
        return self._retry_or_report(r, PAGE, user_id, anonymous_id, name, category, properties,
                                     context, timestamp, integrations, message_id)

    def screen(self, user_id=None, category=None, name=None, properties=None, context=None,
               timestamp=None, anonymous_id=None, integrations=None, message_id=None):
        r = _send(self._h, SCREEN, user_id, anonymous_id,
                         name, category, properties, context, timestamp, integrations,
                         message_id)
        if r is not None and r[0]:
            return r
        return self._retry_or_report(r, SCREEN, user_id, anonymous_id, name, category,
                                     properties, context, timestamp, integrations, message_id)

    def _retry_or_report(self, r, *args):
        if r is None:  # closed by shutdown(): open again, as analytics-python keeps accepting
            self._h = _c.sbpy_client_open(*self._open_args)
            r = _send(self._h, *args)
        if r is not None and not r[0]:
            stats = _c.sbpy_stats(self._h)
            what = ("the daemon did not take it within %ss" % self.timeout if self.sync_mode
                    else "the segbus ring did not take it (full or no daemon; %d full so far)"
                    % stats["full"])
            log.warning("segbus: %s event %s not recorded: %s", r[1]["type"],
                        r[1]["messageId"], what)
            if self.on_error is not None:
                self.on_error(SegbusError(what), [r[1]])
        return r

    # -- flushing ----------------------------------------------------------------------------

    def flush(self, timeout=None):
        """Wait until the daemon has taken every event this client recorded before the call.
        timeout in seconds; None: the client's timeout (15 s by default), never without bound
        (analytics-python's unbounded flush hangs when nothing drains its queue). True when all
        were taken; False when the deadline passed (the events stay in the ring: a daemon that
        starts later takes them)."""
        if not self.send:
            return True
        if timeout is None:
            timeout = self.timeout if self.timeout is not None else 15
        rc = _c.sbpy_flush(self._h, int(timeout * 1000))
        if rc == 0:
            return True
        log.warning("segbus: flush: not every event was taken within %ss (%s); they stay in the "
                    "ring", timeout, "no daemon drains it" if rc != _ETIMEDOUT else "timed out")
        return False

    def join(self):
        """analytics-python stops its consumer threads here; segbus has none: waits as flush()."""
        return self.flush()

    def shutdown(self):
        """flush() then close the client; a later call opens it again."""
        self.flush()
        _c.sbpy_client_close(self._h)

    def stats(self):
        """Counters: sent, full, dropped (events), invalid (refused calls), dropped_values."""
        return _c.sbpy_stats(self._h)
