// mp_text.h: test helper: decode msgpack with msgpack-c (the reference unpacker) and render it as
// compact JSON-like text (keys in wire order, doubles with %.17g) for exact comparisons.
#pragma once
#include <msgpack.h>

#include <cstdio>
#include <map>
#include <string>

#include <gtest/gtest.h>

inline void mp_render(const msgpack_object &o, std::string &out)
{
    char b[64];
    switch (o.type) {
    case MSGPACK_OBJECT_NIL:
        out += "null";
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        out += o.via.boolean ? "true" : "false";
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(b, sizeof b, "%llu", (unsigned long long)o.via.u64);
        out += b;
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(b, sizeof b, "%lld", (long long)o.via.i64);
        out += b;
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        snprintf(b, sizeof b, "%.17g", o.via.f64);
        out += b;
        break;
    case MSGPACK_OBJECT_STR:
        out += '"';
        out.append(o.via.str.ptr, o.via.str.size);
        out += '"';
        break;
    case MSGPACK_OBJECT_ARRAY:
        out += '[';
        for (uint32_t i = 0; i < o.via.array.size; i++) {
            if (i)
                out += ',';
            mp_render(o.via.array.ptr[i], out);
        }
        out += ']';
        break;
    case MSGPACK_OBJECT_MAP:
        out += '{';
        for (uint32_t i = 0; i < o.via.map.size; i++) {
            if (i)
                out += ',';
            mp_render(o.via.map.ptr[i].key, out);
            out += ':';
            mp_render(o.via.map.ptr[i].val, out);
        }
        out += '}';
        break;
    default:
        out += "<other>";
        break;
    }
}

// One decoded event: the whole text, plus each top-level field rendered, by key.
struct Decoded {
    std::string text;
    std::map<std::string, std::string> fields;
    size_t nfields = 0;
    bool ok = false;
};

inline Decoded mp_decode(const void *data, size_t len)
{
    Decoded d;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&u, (const char *)data, len, &off);
    if (r == MSGPACK_UNPACK_SUCCESS && off == len) {
        mp_render(u.data, d.text);
        if (u.data.type == MSGPACK_OBJECT_MAP) {
            d.ok = true;
            d.nfields = u.data.via.map.size;
            for (uint32_t i = 0; i < u.data.via.map.size; i++) {
                const msgpack_object_kv &kv = u.data.via.map.ptr[i];
                std::string k(kv.key.via.str.ptr, kv.key.via.str.size), v;
                mp_render(kv.val, v);
                d.fields[k] = v;
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return d;
}
