// event_util.h: building Segment events as msgpack in tests (msgpack-c as the reference).
#pragma once

#include <msgpack.h>

#include <string>
#include <utility>
#include <vector>

namespace sbt
{

// A field value: a string, nil, an integer, or a raw msgpack value (already packed).
struct Val {
    enum Kind { Str, Nil, Int, Raw } kind = Str;
    std::string s;
    long long i = 0;
    static Val str(std::string v)
    {
        Val x;
        x.s = std::move(v);
        return x;
    }
    static Val nil()
    {
        Val x;
        x.kind = Nil;
        return x;
    }
    static Val num(long long v)
    {
        Val x;
        x.kind = Int;
        x.i = v;
        return x;
    }
    static Val raw(std::string bytes)
    {
        Val x;
        x.kind = Raw;
        x.s = std::move(bytes);
        return x;
    }
};

using Fields = std::vector<std::pair<std::string, Val>>;

inline std::string pack(const Fields &f)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, f.size());
    for (auto &kv : f) {
        msgpack_pack_str_with_body(&pk, kv.first.data(), kv.first.size());
        switch (kv.second.kind) {
        case Val::Str:
            msgpack_pack_str_with_body(&pk, kv.second.s.data(), kv.second.s.size());
            break;
        case Val::Nil:
            msgpack_pack_nil(&pk);
            break;
        case Val::Int:
            msgpack_pack_long_long(&pk, kv.second.i);
            break;
        case Val::Raw:
            msgpack_sbuffer_write(&sb, kv.second.s.data(), kv.second.s.size());
            break;
        }
    }
    std::string out(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

// A packed empty map / a map {k: v}.
inline std::string map_raw(const Fields &f)
{
    return pack(f);
}

inline std::string track(const std::string &id, const std::string &user = "u1",
                         const std::string &event = "Order Completed")
{
    return pack({{"type", Val::str("track")},
                 {"userId", Val::str(user)},
                 {"event", Val::str(event)},
                 {"messageId", Val::str(id)},
                 {"properties", Val::raw(map_raw({{"total", Val::num(42)}}))},
                 {"timestamp", Val::str("2026-11-28T14:00:00.000Z")}});
}

} // namespace sbt
