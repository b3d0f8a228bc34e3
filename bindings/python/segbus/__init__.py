"""segbus: Segment-style analytics over a shared-memory ring (drop-in for analytics-python)."""
import decimal as _decimal
import enum as _enum
import uuid as _uuid

from . import _segbus_ext as _ext

_ext.sbpy_setup(_decimal.Decimal, _uuid.UUID, _enum.Enum)


def to_msgpack(value, strict=False):
    """Convert value as an event field is converted: returns (bytes or None, warnings or None)."""
    return _ext.sbpy_pack(value, bool(strict))


def dropped_values():
    """How many values were dropped as unserialisable since import, over all clients."""
    return _ext.sbpy_dropped()
