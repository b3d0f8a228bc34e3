// mpv.h: a tiny value tree for tests that packs to msgpack with msgpack-c, so test events read
// like the JSON a Segment client would send.
#pragma once

#include <msgpack.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct V {
    enum Kind { Nil, Bool, Int, Dbl, Str, Arr, Obj } k = Nil;
    bool b = false;
    int64_t i = 0;
    double d = 0;
    std::string s;
    std::vector<V> a;
    std::vector<std::pair<std::string, V>> o;

    V() = default;
    V(bool x) : k(Bool), b(x) {}
    V(int x) : k(Int), i(x) {}
    V(int64_t x) : k(Int), i(x) {}
    V(double x) : k(Dbl), d(x) {}
    V(const char *x) : k(Str), s(x) {}
    V(std::string x) : k(Str), s(std::move(x)) {}
    static V arr(std::vector<V> items)
    {
        V v;
        v.k = Arr;
        v.a = std::move(items);
        return v;
    }
    static V obj(std::vector<std::pair<std::string, V>> items)
    {
        V v;
        v.k = Obj;
        v.o = std::move(items);
        return v;
    }
};
using Obj = std::vector<std::pair<std::string, V>>;

inline void mpv_pack(msgpack_packer *pk, const V &v)
{
    switch (v.k) {
    case V::Nil:
        msgpack_pack_nil(pk);
        break;
    case V::Bool:
        v.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    case V::Int:
        msgpack_pack_int64(pk, v.i);
        break;
    case V::Dbl:
        msgpack_pack_double(pk, v.d);
        break;
    case V::Str:
        msgpack_pack_str(pk, v.s.size());
        msgpack_pack_str_body(pk, v.s.data(), v.s.size());
        break;
    case V::Arr:
        msgpack_pack_array(pk, v.a.size());
        for (auto &x : v.a)
            mpv_pack(pk, x);
        break;
    case V::Obj:
        msgpack_pack_map(pk, v.o.size());
        for (auto &kv : v.o) {
            msgpack_pack_str(pk, kv.first.size());
            msgpack_pack_str_body(pk, kv.first.data(), kv.first.size());
            mpv_pack(pk, kv.second);
        }
        break;
    }
}

inline std::string mpv(const V &v)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    mpv_pack(&pk, v);
    std::string out(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}
