// json_to_msgpack.cc: the simdjson (DOM) shim behind sb_json_to_msgpack, and double formatting.
// DOM rather than On-Demand: bench/json measured them on the seed's events (see bench/json/run)
// and DOM is a full validator, where On-Demand only checks what it visits.
#include <simdjson.h>

#include <cerrno>
#include <charconv>
#include <cmath>
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

int pack(simdjson::dom::element e, msgpack_packer *pk, int depth)
{
    using simdjson::dom::element_type;
    switch (e.type()) {
    case element_type::ARRAY: {
        if (depth >= SB_JSON_MAX_DEPTH)
            return 1;
        simdjson::dom::array a = e.get_array().value_unsafe();
        if (msgpack_pack_array(pk, a.size()))
            return -1;
        for (simdjson::dom::element c : a) {
            int rc = pack(c, pk, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case element_type::OBJECT: {
        if (depth >= SB_JSON_MAX_DEPTH)
            return 1;
        simdjson::dom::object o = e.get_object().value_unsafe();
        if (msgpack_pack_map(pk, o.size()))
            return -1;
        for (simdjson::dom::key_value_pair kv : o) {
            if (msgpack_pack_str_with_body(pk, kv.key.data(), kv.key.size()))
                return -1;
            int rc = pack(kv.value, pk, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    case element_type::INT64:
        return msgpack_pack_int64(pk, e.get_int64().value_unsafe()) ? -1 : 0;
    case element_type::UINT64:
        return msgpack_pack_uint64(pk, e.get_uint64().value_unsafe()) ? -1 : 0;
    case element_type::DOUBLE:
        return msgpack_pack_double(pk, e.get_double().value_unsafe()) ? -1 : 0;
    case element_type::STRING: {
        std::string_view s = e.get_string().value_unsafe();
        return msgpack_pack_str_with_body(pk, s.data(), s.size()) ? -1 : 0;
    }
    case element_type::BOOL:
        return (e.get_bool().value_unsafe() ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) ? -1
                                                                                              : 0;
    case element_type::NULL_VALUE:
        return msgpack_pack_nil(pk) ? -1 : 0;
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
    int rc = pack(root, pk, 0);
    if (rc < 0)
        return -ENOMEM;
    if (rc > 0) // deeper than SB_JSON_MAX_DEPTH: the checker finds where
        return refuse(text, len, err, simdjson::DEPTH_ERROR);
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
