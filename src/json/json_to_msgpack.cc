// json_to_msgpack.cc: the simdjson (DOM) shim behind sb_json_to_msgpack, and double formatting.
// DOM rather than On-Demand: bench/json measured them on the seed's events (see bench/json/run)
// and DOM is a full validator, where On-Demand only checks what it visits.
#include <simdjson.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "json/json_internal.h"
#include "segbus/segbus.h"

namespace
{

// One parser and one padded input copy per thread: simdjson reads up to SIMDJSON_PADDING bytes
// past the end, and the caller's bytes carry no such promise.
struct state {
    simdjson::dom::parser parser;
    char *pad = nullptr;
    size_t cap = 0;
    ~state()
    {
        std::free(pad);
    }
};

thread_local state tls;

// The packed bytes are built here and handed to the caller's packer in one write: msgpack-c's
// packer calls its write callback once per header and per body, which cost more than the
// parsing on the hub's batches. The encodings are msgpack-c's (smallest form, str8 on), so the
// bytes are the same as packing through it (tests/json checks them against msgpack-c).
struct writer {
    uint8_t *p = nullptr, *end = nullptr, *base = nullptr;
    ~writer()
    {
        std::free(base);
    }
    size_t len() const
    {
        return static_cast<size_t>(p - base);
    }
    bool room(size_t n)
    {
        if (static_cast<size_t>(end - p) >= n)
            return true;
        size_t used = len(), cap = static_cast<size_t>(end - base);
        size_t want = used + n;
        cap = cap ? cap : 4096;
        while (cap < want)
            cap *= 2;
        uint8_t *nb = static_cast<uint8_t *>(std::realloc(base, cap));
        if (!nb)
            return false;
        base = nb;
        p = nb + used;
        end = nb + cap;
        return true;
    }
    void be(uint64_t v, unsigned n) // room checked by the caller
    {
        for (unsigned k = 0; k < n; k++)
            p[k] = static_cast<uint8_t>(v >> (8 * (n - 1 - k)));
        p += n;
    }
    bool head(uint8_t fix, uint8_t c16, uint32_t n, unsigned fixmax) // map and array headers
    {
        if (!room(5))
            return false;
        if (n < fixmax) {
            *p++ = static_cast<uint8_t>(fix | n);
        } else if (n < 65536) {
            *p++ = c16;
            be(n, 2);
        } else {
            *p++ = static_cast<uint8_t>(c16 + 1);
            be(n, 4);
        }
        return true;
    }
    bool str(const char *s, size_t n)
    {
        if (n > UINT32_MAX || !room(5 + n))
            return false;
        if (n < 32) {
            *p++ = static_cast<uint8_t>(0xa0 | n);
        } else if (n < 256) {
            *p++ = 0xd9;
            *p++ = static_cast<uint8_t>(n);
        } else if (n < 65536) {
            *p++ = 0xda;
            be(n, 2);
        } else {
            *p++ = 0xdb;
            be(n, 4);
        }
        std::memcpy(p, s, n);
        p += n;
        return true;
    }
    bool uint(uint64_t v)
    {
        if (!room(9))
            return false;
        if (v < 128)
            *p++ = static_cast<uint8_t>(v);
        else if (v < 256)
            *p++ = 0xcc, *p++ = static_cast<uint8_t>(v);
        else if (v < 65536)
            *p++ = 0xcd, be(v, 2);
        else if (v <= UINT32_MAX)
            *p++ = 0xce, be(v, 4);
        else
            *p++ = 0xcf, be(v, 8);
        return true;
    }
    bool sint(int64_t v)
    {
        if (v >= 0)
            return uint(static_cast<uint64_t>(v));
        if (!room(9))
            return false;
        if (v >= -32)
            *p++ = static_cast<uint8_t>(v);
        else if (v >= -128)
            *p++ = 0xd0, *p++ = static_cast<uint8_t>(v);
        else if (v >= -32768)
            *p++ = 0xd1, be(static_cast<uint64_t>(v), 2);
        else if (v >= INT32_MIN)
            *p++ = 0xd2, be(static_cast<uint64_t>(v), 4);
        else
            *p++ = 0xd3, be(static_cast<uint64_t>(v), 8);
        return true;
    }
    bool dbl(double d)
    {
        if (!room(9))
            return false;
        uint64_t bits;
        std::memcpy(&bits, &d, 8);
        *p++ = 0xcb;
        be(bits, 8);
        return true;
    }
    bool byte(uint8_t b)
    {
        if (!room(1))
            return false;
        *p++ = b;
        return true;
    }
};

thread_local writer packed_out;

int pack(simdjson::dom::element e, writer &w, int depth)
{
    using simdjson::dom::element_type;
    switch (e.type()) {
    case element_type::ARRAY: {
        if (depth >= SB_JSON_MAX_DEPTH)
            return 1;
        simdjson::dom::array a = e.get_array().value_unsafe();
        size_t n = a.size();
        if (n == 0xFFFFFF) { // simdjson's size() saturates there: count
            n = 0;
            for (simdjson::dom::element c : a)
                n += (static_cast<void>(c), 1);
        }
        if (n > UINT32_MAX || !w.head(0x90, 0xdc, static_cast<uint32_t>(n), 16))
            return -1;
        for (simdjson::dom::element c : a) {
            int rc = pack(c, w, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case element_type::OBJECT: {
        if (depth >= SB_JSON_MAX_DEPTH)
            return 1;
        simdjson::dom::object o = e.get_object().value_unsafe();
        size_t n = o.size();
        if (n == 0xFFFFFF) {
            n = 0;
            for (simdjson::dom::key_value_pair kv : o)
                n += (static_cast<void>(kv), 1);
        }
        if (n > UINT32_MAX || !w.head(0x80, 0xde, static_cast<uint32_t>(n), 16))
            return -1;
        for (simdjson::dom::key_value_pair kv : o) {
            if (!w.str(kv.key.data(), kv.key.size()))
                return -1;
            int rc = pack(kv.value, w, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case element_type::INT64:
        return w.sint(e.get_int64().value_unsafe()) ? 0 : -1;
    case element_type::UINT64:
        return w.uint(e.get_uint64().value_unsafe()) ? 0 : -1;
    case element_type::DOUBLE:
        return w.dbl(e.get_double().value_unsafe()) ? 0 : -1;
    case element_type::STRING: {
        std::string_view s = e.get_string().value_unsafe();
        return w.str(s.data(), s.size()) ? 0 : -1;
    }
    case element_type::BOOL:
        return w.byte(e.get_bool().value_unsafe() ? 0xc3 : 0xc2) ? 0 : -1;
    case element_type::NULL_VALUE:
        return w.byte(0xc0) ? 0 : -1;
    }
    return -1;
}

int refuse(const char *text, size_t len, struct sb_json_error *err, simdjson::error_code code)
{
    struct sb_json_error tmp;
    if (!err)
        err = &tmp;
    int rc = sb_json_locate(text, len, err);
    if (rc < 0)
        return rc;
    // simdjson refused what the strict checker accepts: report simdjson's reason without an
    // offset rather than nothing (the fuzz target checks that this does not happen).
    err->offset = 0;
    err->reason = simdjson::error_message(code);
    return code == simdjson::UTF8_ERROR ? -SEGBUS_EUTF8 : -SEGBUS_EJSON;
}

} // namespace

extern "C" int sb_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk,
                                  struct sb_json_error *err)
{
    if (err) {
        err->offset = 0;
        err->reason = nullptr;
    }
    if (!text && len)
        return -EINVAL;
    state &st = tls;
    size_t need = len + simdjson::SIMDJSON_PADDING;
    if (need > st.cap) {
        size_t cap = need < 4096 ? 4096 : need + need / 2;
        char *p = static_cast<char *>(std::realloc(st.pad, cap));
        if (!p)
            return -ENOMEM;
        st.pad = p;
        st.cap = cap;
    }
    if (len)
        std::memcpy(st.pad, text, len);
    std::memset(st.pad + len, 0, simdjson::SIMDJSON_PADDING);
    simdjson::dom::element root;
    simdjson::error_code code = st.parser.parse(st.pad, len, false).get(root);
    if (code == simdjson::MEMALLOC)
        return -ENOMEM;
    if (code)
        return refuse(text, len, err, code);
    writer &w = packed_out;
    w.p = w.base;
    int rc = pack(root, w, 0);
    if (rc < 0)
        return -ENOMEM;
    if (rc > 0) // deeper than SB_JSON_MAX_DEPTH: the checker finds where
        return refuse(text, len, err, simdjson::DEPTH_ERROR);
    if (w.len() && pk->callback(pk->data, reinterpret_cast<const char *>(w.base), w.len()))
        return -ENOMEM;
    return 0;
}

namespace
{
template <typename T> size_t format(T v, char out[32])
{
    std::to_chars_result r = std::to_chars(out, out + 28, v);
    size_t n = static_cast<size_t>(r.ptr - out);
    // "1" would read back as an integer: keep the value a float across a round trip.
    if (!std::memchr(out, '.', n) && !std::memchr(out, 'e', n)) {
        out[n++] = '.';
        out[n++] = '0';
    }
    out[n] = 0;
    return n;
}
} // namespace

extern "C" size_t sb_json_format_double(double d, char out[32])
{
    return format(d, out);
}

extern "C" size_t sb_json_format_float(float f, char out[32])
{
    return format(f, out);
}
