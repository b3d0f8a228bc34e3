"""Python values -> msgpack in C (segbus.to_msgpack), checked by decoding with the msgpack package
and, where the shape allows, byte for byte against msgpack's own packer."""
import datetime
import decimal
import enum
import uuid

import msgpack
import pytest

import segbus


def unpack(b):
    return msgpack.unpackb(b, raw=False, strict_map_key=False)


def test_scalars_and_containers_round_trip_byte_for_byte():
    value = {"s": "text é ✓", "i": -5, "u": 2**63 + 1, "f": 1.5, "t": True, "n": None,
             "l": [1, [2, {"x": "y"}]], "empty": {}, "e": [], "long": "x" * 70000,
             "many": {str(i): i for i in range(70)}}
    b, warnings = segbus.to_msgpack(value)
    assert warnings is None
    assert b == msgpack.packb(value, use_bin_type=True)


def test_tuples_and_sets_become_arrays():
    b, _ = segbus.to_msgpack({"t": (1, 2), "s": {3}, "fs": frozenset([4])})
    assert unpack(b) == {"t": [1, 2], "s": [3], "fs": [4]}


def test_int_limits_and_big_ints_as_decimal_strings():
    b, w = segbus.to_msgpack([2**63 - 1, -2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**30])
    assert w is None
    assert unpack(b) == [2**63 - 1, -2**63, 2**64 - 1, str(2**64), str(-2**63 - 1), str(10**30)]


def test_datetime_date_decimal_uuid_enum_bytes():
    class Color(enum.Enum):
        RED = "red"

    class Level(enum.IntEnum):
        HIGH = 3

    tz = datetime.timezone(datetime.timedelta(hours=2))
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    value = {"dt": datetime.datetime(2026, 11, 28, 14, 13, 30, 123000, tzinfo=tz),
             "naive": datetime.datetime(2026, 1, 2, 3, 4, 5),
             "d": datetime.date(2026, 11, 28), "dec": decimal.Decimal("129.98"), "id": u,
             "color": Color.RED, "level": Level.HIGH, "b": b"bytes", "ba": bytearray(b"ba")}
    b, w = segbus.to_msgpack(value)
    assert w is None
    assert unpack(b) == {"dt": "2026-11-28T14:13:30.123000+02:00", "naive": "2026-01-02T03:04:05",
                         "d": "2026-11-28", "dec": 129.98, "id": str(u), "color": "red",
                         "level": 3, "b": "bytes", "ba": "ba"}


def test_keys_as_json_writes_them():
    b, w = segbus.to_msgpack({5: "a", 2.5: "b", True: "c", False: "e", None: "d"})
    assert w is None
    assert unpack(b) == {"5": "a", "2.5": "b", "true": "c", "false": "e", "null": "d"}


def test_unserialisable_values_are_dropped_with_their_path_and_counted():
    before = segbus.dropped_values()
    value = {"ok": 1, "obj": object(), "products": [{"price": float("nan"), "name": "w"},
                                                     {"bad": b"\xff", "keep": 2}],
             (1, 2): "tuple key", "sur": "\udc80"}
    b, w = segbus.to_msgpack(value)
    assert unpack(b) == {"ok": 1, "products": [{"name": "w"}, {"keep": 2}]}
    assert len(w) == 5
    joined = "\n".join(w)
    assert "value.obj: no JSON form (value of type object)" in joined
    assert "value.products[0].price: NaN and Infinity have no JSON form" in joined
    assert "value.products[1].bad: bytes are not valid UTF-8" in joined
    assert "a key must be a string" in joined
    assert "value.sur: string is not valid UTF-8" in joined
    assert segbus.dropped_values() == before + 5


def test_drops_shrink_the_container_header_to_msgpacks_own_form():
    # 17 entries need a map16 header; after dropping two the map has 15: a fixmap.
    value = {str(i): i for i in range(15)}
    value["x"] = object()
    value["y"] = float("inf")
    b, w = segbus.to_msgpack(value)
    assert len(w) == 2
    assert b == msgpack.packb({str(i): i for i in range(15)})
    lst = list(range(15)) + [object(), object()]
    b, _ = segbus.to_msgpack(lst)
    assert b == msgpack.packb(list(range(15)))


def test_depth_limit_stops_cycles():
    cycle = []
    cycle.append(cycle)
    b, w = segbus.to_msgpack(cycle)
    assert len(w) == 1 and "nested deeper than 32" in w[0]
    d = unpack(b)
    containers = 0
    while isinstance(d, list):
        containers += 1
        d = d[0] if d else None
    assert containers == 32  # the 33rd level (the cycle's next turn) was dropped


def test_strict_mode_raises_type_error_naming_the_path():
    with pytest.raises(TypeError, match=r"value\.a\.b\[1\]: no JSON form"):
        segbus.to_msgpack({"a": {"b": [1, object()]}}, strict=True)
    with pytest.raises(TypeError, match="NaN"):
        segbus.to_msgpack([float("nan")], strict=True)


def test_subclasses_and_int_likes():
    class S(str):
        pass

    class D(dict):
        pass

    class IntLike:
        def __index__(self):
            return 7

    b, w = segbus.to_msgpack(D(a=S("x"), b=IntLike()))
    assert w is None
    assert unpack(b) == {"a": "x", "b": 7}


def test_a_value_mutating_its_container_does_not_crash():
    d = {"a": 1}

    class Evil:
        def isoformat(self):
            return "x"

        def __index__(self):
            d.clear()
            return 1

    d["e"] = Evil()
    d["z"] = 3
    b, _ = segbus.to_msgpack(d)
    assert isinstance(unpack(b), dict)
