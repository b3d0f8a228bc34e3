"""The analytics-python API of segbus, checked on what reaches the ring: every call type's event
is read back by the sink and decoded with msgpack, field by field; every error path writes
nothing (a sentinel sent after it is the next record)."""
import datetime
import decimal
import json
import logging
import os
import re
import uuid

import pytest

import segbus

ORDER = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                    "tests", "data", "order_completed.json")))
LIBRARY = {"name": "segbus", "version": segbus.VERSION}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")
UUID7_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def assert_sent_as(event, msg, write_key="wk-test"):
    """The ring's event carries exactly the returned message's fields (empty maps and None may
    be left out of the ring), plus the client's write key."""
    for key, value in msg.items():
        if value is None or (value == {} and key in ("integrations", "properties", "traits")):
            assert event.get(key) in (None, {}), key
        else:
            assert event[key] == value, key
    assert set(event) - set(msg) <= {"writeKey"}, set(event) - set(msg)
    assert event.get("writeKey") == write_key


def sentinel(client, sink, n_before):
    """After an error: the next record in the ring is the sentinel, so the error wrote nothing."""
    ok, msg = client.track("sentinel", "Sentinel")
    assert ok
    events = sink.wait(n_before + 1)
    assert events[n_before]["messageId"] == msg["messageId"]


def test_track_order_completed_round_trip(client, sink):
    ok, msg = client.track("user-1", "Order Completed", ORDER)
    assert ok is True
    assert msg["type"] == "track" and msg["event"] == "Order Completed"
    assert msg["userId"] == "user-1" and msg["anonymousId"] is None
    assert msg["properties"] == ORDER
    assert msg["context"] == {"library": LIBRARY}
    assert TS_RE.match(msg["timestamp"]), msg["timestamp"]
    assert UUID7_RE.match(msg["messageId"]), msg["messageId"]
    (event,) = sink.wait(1)
    assert_sent_as(event, msg)
    assert event["properties"] == ORDER


def test_returned_messages_share_no_mutable_parts(client, sink):
    ctx = {"ip": "10.0.0.1"}
    _, first = client.track("u", "One", context=ctx)
    first["context"]["library"]["name"] = "edited"
    first["context"]["ip"] = "edited"
    _, second = client.track("u", "Two", context=ctx)
    assert second["context"] == {"ip": "10.0.0.1", "library": LIBRARY}
    assert ctx == {"ip": "10.0.0.1"}  # the caller's context is not touched either
    assert [e["context"]["library"] for e in sink.wait(2)] == [LIBRARY, LIBRARY]


def test_every_call_type_round_trip(client, sink):
    ts = datetime.datetime(2026, 11, 28, 14, 13, 30, 123456, tzinfo=datetime.timezone.utc)
    common = dict(context={"ip": "10.0.0.1", "page": {"path": "/x"}}, timestamp=ts,
                  integrations={"All": False, "Mixpanel": True})
    calls = [
        client.track("u1", "Signed Up", {"plan": "pro"}, message_id="m-track", **common),
        client.identify("u1", {"email": "a@example.com", "age": 42}, message_id="m-id", **common),
        client.group("u1", "g1", {"name": "Acme", "employees": 12}, message_id="m-group", **common),
        client.alias("anon-1", "u1", message_id="m-alias", **common),
        client.page("u1", "Docs", "Install", {"url": "https://x/y"}, message_id="m-page", **common),
        client.screen("u1", "Main", "Home", {"x": 1}, message_id="m-screen", **common),
        client.track(anonymous_id="anon-2", event="Viewed", message_id="m-anon"),
    ]
    events = sink.wait(len(calls))
    for (ok, msg), event in zip(calls, events):
        assert ok
        assert_sent_as(event, msg)
        if msg["messageId"] != "m-anon":
            assert event["timestamp"] == "2026-11-28T14:13:30.123+00:00"
            assert event["context"] == {"ip": "10.0.0.1", "page": {"path": "/x"}, "library": LIBRARY}
            assert event["integrations"] == {"All": False, "Mixpanel": True}
    by_type = {e["type"]: e for e in events}
    assert by_type["identify"]["traits"] == {"email": "a@example.com", "age": 42}
    assert by_type["group"]["groupId"] == "g1" and by_type["group"]["traits"]["name"] == "Acme"
    assert by_type["alias"]["previousId"] == "anon-1" and by_type["alias"]["userId"] == "u1"
    assert by_type["page"]["name"] == "Install" and by_type["page"]["category"] == "Docs"
    assert by_type["screen"]["name"] == "Home" and by_type["screen"]["category"] == "Main"
    assert [e["messageId"] for e in events] == ["m-track", "m-id", "m-group", "m-alias",
                                                  "m-page", "m-screen", "m-anon"]
    assert events[-1]["anonymousId"] == "anon-2" and "userId" not in events[-1]


def test_ids_are_stringified_like_analytics_python(client, sink):
    ok, msg = client.track(42, "Numbered", message_id=uuid.UUID(int=7))
    assert ok and msg["userId"] == "42" and msg["messageId"] == str(uuid.UUID(int=7))
    ok, msg = client.group(1.5, 99)
    assert msg["userId"] == "1.5" and msg["groupId"] == "99"
    events = sink.wait(2)
    assert events[0]["userId"] == "42" and events[1]["groupId"] == "99"


def test_rich_values_convert_in_c(client, sink):
    props = {"when": datetime.date(2026, 1, 2), "price": decimal.Decimal("9.99"),
             "id": uuid.UUID(int=1), "tags": ("a", "b"), "big": 2**70}
    ok, msg = client.track("u", "Rich", props)
    (event,) = sink.wait(1)
    assert event["properties"] == {"when": "2026-01-02", "price": 9.99,
                                   "id": "00000000-0000-0000-0000-000000000001",
                                   "tags": ["a", "b"], "big": str(2**70)}


def test_unserialisable_value_dropped_logged_and_counted(client, sink, caplog):
    caplog.set_level(logging.WARNING, logger="segbus")
    ok, msg = client.track("u", "Partly Bad", {"good": 1, "items": [{"bad": object(), "ok": 2}]})
    assert ok
    assert msg["properties"] == {"good": 1, "items": [{"ok": 2}]}  # the message as sent
    (event,) = sink.wait(1)
    assert event["properties"] == {"good": 1, "items": [{"ok": 2}]}
    assert any("properties.items[0].bad: no JSON form" in r.getMessage() for r in caplog.records)
    assert client.stats()["dropped_values"] == 1


def test_strict_mode_raises_type_error_and_writes_nothing(sink):
    c = segbus.Client(socket=sink.path, strict=True, standalone=False)
    with pytest.raises(TypeError, match=r"context\.x: no JSON form"):
        c.track("u", "E", context={"x": object()})
    ok, msg = c.track("sentinel", "Sentinel")
    (event,) = sink.wait(1)
    assert event["messageId"] == msg["messageId"]
    c.shutdown()


@pytest.mark.parametrize("call, match", [
    (lambda c: c.track(event="E"), r"user_id or anonymous_id must have"),
    (lambda c: c.track("", "E", anonymous_id=""), r"user_id or anonymous_id must have"),
    (lambda c: c.track("u", None), r"event must have <class 'str'>"),
    (lambda c: c.track("u", 5), r"event must have <class 'str'>"),
    (lambda c: c.track("u", ""), r"event must have"),
    (lambda c: c.track("u", "E", ["not", "a", "dict"]), r"properties must have <class 'dict'>"),
    (lambda c: c.track("u", "E", context="ctx"), r"context must have <class 'dict'>"),
    (lambda c: c.track("u", "E", integrations=[1]), r"integrations must have <class 'dict'>"),
    (lambda c: c.track("u", "E", timestamp=12345), r"timestamp must have"),
    (lambda c: c.track("u", "E", timestamp="yesterday"), r"timestamp must have"),
    (lambda c: c.track("u", "E", message_id="x" * 101), r"message_id must be 1 to 100"),
    (lambda c: c.track(["u"], "E"), r"user_id must have"),
    (lambda c: c.identify("u", traits=5), r"traits must have <class 'dict'>"),
    (lambda c: c.group("u", None), r"group_id must have"),
    (lambda c: c.alias(None, "u"), r"previous_id must have"),
    (lambda c: c.alias("p", None), r"user_id must have"),
    (lambda c: c.page("u", name=5), r"name must have <class 'str'>"),
    (lambda c: c.screen("u", category=["x"]), r"category must have <class 'str'>"),
])
def test_bad_arguments_raise_assertion_error_naming_them(client, sink, call, match):
    with pytest.raises(AssertionError, match=match):
        call(client)
    sentinel(client, sink, 0)


def test_oversize_event_raises_runtime_error_naming_32kb(client, sink):
    with pytest.raises(RuntimeError, match=r"32kb limit"):
        client.track("u", "Huge", {"blob": "x" * 40000})
    with pytest.raises(RuntimeError, match=r"32kb limit"):
        client.track("u", "Huge", {"parts": ["y" * 1000] * 33})
    sentinel(client, sink, 0)


def test_send_false_returns_the_message_and_enqueues_nothing(sink):
    c = segbus.Client("wk", socket=sink.path, send=False)
    ok, msg = c.track("u", "Not Sent", {"a": 1})
    assert ok and msg["event"] == "Not Sent" and UUID7_RE.match(msg["messageId"])
    with pytest.raises(AssertionError):
        c.track(None, "No Id")
    real = segbus.Client("wk-test", socket=sink.path, standalone=False)
    sentinel(real, sink, 0)
    real.shutdown()


def test_sync_mode_waits_until_the_daemon_holds_the_event(sink):
    c = segbus.Client("wk-test", socket=sink.path, sync_mode=True, timeout=5, standalone=False)
    ok, msg = c.track("u", "Synced")
    assert ok
    (event,) = sink.wait(1, timeout=2)
    assert event["messageId"] == msg["messageId"]
    c.shutdown()


def test_sync_mode_reports_a_daemon_that_does_not_take_it(sink):
    errors = []
    c = segbus.Client(socket=sink.path, sync_mode=True, timeout=0.2, standalone=False,
                      on_error=lambda e, batch: errors.append((e, batch)))
    sink.pause()
    try:
        ok, msg = c.track("u", "Stalled")
    finally:
        sink.resume()
    assert ok is False
    assert len(errors) == 1 and errors[0][1][0]["messageId"] == msg["messageId"]
    (event,) = sink.wait(1)  # not lost: the daemon takes it once it runs again
    assert event["messageId"] == msg["messageId"]
    c.shutdown()


def test_flush_returns_once_the_daemon_took_everything(client, sink):
    for i in range(200):
        client.track("u", "Bulk", {"i": i})
    assert client.flush(timeout=5) is True
    assert len(sink.wait(200)) == 200


def test_shutdown_then_calls_keep_working(client, sink):
    client.track("u", "Before")
    client.shutdown()
    ok, _ = client.track("u", "After")
    assert ok
    assert [e["event"] for e in sink.wait(2)] == ["Before", "After"]


def test_module_level_api_is_analytics_pythons(sink):
    import segbus as analytics

    analytics.write_key = "wk-module"
    analytics.socket = sink.path
    ok, msg = analytics.track("user-1", "Order Completed", ORDER)
    assert ok
    analytics.identify("user-1", {"plan": "pro"})
    analytics.group("user-1", "g1", {"name": "Acme"})
    analytics.alias("anon", "user-1")
    analytics.page("user-1", "Docs", "Home")
    analytics.screen("user-1", "App", "Main")
    assert analytics.flush() is True
    analytics.join()
    events = sink.wait(6)
    assert [e["type"] for e in events] == ["track", "identify", "group", "alias", "page", "screen"]
    assert all(e["writeKey"] == "wk-module" for e in events)
    assert_sent_as(events[0], msg, write_key="wk-module")
    analytics.shutdown()


def test_module_settings_send_false_and_debug(sink, caplog):
    import segbus as analytics

    analytics.send = False
    analytics.debug = True
    analytics.host = "https://events.eu1.segmentapis.com"  # accepted; the daemon delivers
    analytics.on_error = lambda e, b: None
    analytics.max_queue_size = 5
    ok, msg = analytics.track("u", "Dry Run")
    assert ok and msg["event"] == "Dry Run"
    assert segbus.default_client.send is False


def test_full_ring_returns_false_and_calls_on_error(tmp_path):
    from conftest import Sink

    s = Sink(str(tmp_path / "small.sock"), "--capacity", "65536")
    errors = []
    c = segbus.Client(socket=s.path, standalone=False, on_error=lambda e, b: errors.append(b))
    s.pause()
    try:
        results = [c.track("u", "Fill", {"pad": "z" * 1000})[0] for _ in range(200)]
    finally:
        s.resume()
    assert results[0] is True and results[-1] is False
    assert len(errors) == results.count(False)
    assert c.stats()["full"] == results.count(False)
    assert len(s.wait(results.count(True))) == results.count(True)
    c.shutdown()
    s.close()


def test_no_daemon_refused_or_standalone(tmp_path):
    missing = str(tmp_path / "none.sock")
    with pytest.raises(RuntimeError, match="segbus client: .*no segbusd"):
        segbus.Client(socket=missing, standalone=False)
    alone = segbus.Client(socket=missing, timeout=0.1)  # a ring of its own, adopted later
    ok, msg = alone.track("u", "Alone")
    assert ok and alone.stats()["sent"] == 1
    assert alone.flush(timeout=0.1) is False  # honest: nobody has taken it yet
    alone.shutdown()


def test_module_functions_have_analytics_pythons_signatures(sink):
    import inspect

    import segbus as analytics

    assert str(inspect.signature(analytics.track)) == (
        "(user_id=None, event=None, properties=None, context=None, timestamp=None, "
        "anonymous_id=None, integrations=None, message_id=None)")
    assert list(inspect.signature(analytics.page).parameters)[:3] == ["user_id", "category", "name"]
    assert list(inspect.signature(analytics.alias).parameters)[:2] == ["previous_id", "user_id"]
    analytics.socket = sink.path
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        analytics.track("u", "E", bogus=1)
    with pytest.raises(TypeError, match="multiple values for argument 'user_id'"):
        analytics.track("u", user_id="x")
    with pytest.raises(TypeError, match="at most 8 positional"):
        analytics.track(*range(9))
    ok, _ = analytics.page(name="Home", user_id="u", category="Docs")
    assert ok
    analytics.shutdown()  # closed: the next call reopens, as analytics-python keeps accepting
    ok, _ = analytics.screen("u", "App", "Main")
    assert ok
    events = sink.wait(2)
    assert [(e["type"], e["name"]) for e in events] == [("page", "Home"), ("screen", "Main")]
    assert events[0]["category"] == "Docs"
