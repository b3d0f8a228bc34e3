// bench_json.cc: ns per event for JSON -> msgpack: simdjson DOM (segbus), On-Demand, jansson.
#include <simdjson.h>

#include <jansson.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

extern "C" {
#include "json/json.h"
}

namespace
{

// On-Demand: the same packing as the library, walking the document once.
simdjson::error_code od_pack(simdjson::ondemand::value v, msgpack_packer *pk, int depth)
{
    using namespace simdjson;
    ondemand::json_type t;
    if (auto e = v.type().get(t))
        return e;
    switch (t) {
    case ondemand::json_type::array: {
        // Arrays need their size up front for msgpack: count_elements costs a pass.
        ondemand::array a;
        if (auto e = v.get_array().get(a))
            return e;
        size_t n;
        if (auto e = a.count_elements().get(n))
            return e;
        msgpack_pack_array(pk, n);
        for (auto el : a) {
            ondemand::value c;
            if (auto e = el.get(c))
                return e;
            if (auto e = od_pack(c, pk, depth + 1))
                return e;
        }
        return SUCCESS;
    }
    case ondemand::json_type::object: {
        ondemand::object o;
        if (auto e = v.get_object().get(o))
            return e;
        size_t n;
        if (auto e = o.count_fields().get(n))
            return e;
        msgpack_pack_map(pk, n);
        for (auto f : o) {
            std::string_view k;
            if (auto e = f.unescaped_key().get(k))
                return e;
            msgpack_pack_str_with_body(pk, k.data(), k.size());
            ondemand::value c;
            if (auto e = f.value().get(c))
                return e;
            if (auto e = od_pack(c, pk, depth + 1))
                return e;
        }
        return SUCCESS;
    }
    case ondemand::json_type::number: {
        ondemand::number num;
        if (auto e = v.get_number().get(num))
            return e;
        if (num.is_int64())
            msgpack_pack_int64(pk, num.get_int64());
        else if (num.is_uint64())
            msgpack_pack_uint64(pk, num.get_uint64());
        else
            msgpack_pack_double(pk, num.get_double());
        return SUCCESS;
    }
    case ondemand::json_type::string: {
        std::string_view s;
        if (auto e = v.get_string().get(s))
            return e;
        msgpack_pack_str_with_body(pk, s.data(), s.size());
        return SUCCESS;
    }
    case ondemand::json_type::boolean: {
        bool b;
        if (auto e = v.get_bool().get(b))
            return e;
        b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        return SUCCESS;
    }
    case ondemand::json_type::null:
        msgpack_pack_nil(pk);
        return SUCCESS;
    }
    return UNEXPECTED_ERROR;
}

void jansson_pack(json_t *j, msgpack_packer *pk)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        msgpack_pack_map(pk, json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            msgpack_pack_str_with_body(pk, k, strlen(k));
            jansson_pack(v, pk);
        }
        break;
    }
    case JSON_ARRAY: {
        msgpack_pack_array(pk, json_array_size(j));
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) jansson_pack(v, pk);
        break;
    }
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

std::string order_completed(int products)
{
    std::string p;
    for (int i = 0; i < products; i++)
        p += std::string(i ? "," : "") + "{\"product_id\":\"SKU-" + std::to_string(12345 + i) +
             "\",\"name\":\"Premium Widget\",\"price\":49.99,\"quantity\":1,\"category\":"
             "\"Widgets\",\"brand\":\"Acme\"}";
    return "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"USR-12345\","
           "\"anonymousId\":\"0b4d2f8e-3c1a-4f6b-9d7e-5a8c2b1e9f30\",\"messageId\":"
           "\"01890a5d-ac96-774b-bcce-b302099a8057\",\"timestamp\":\"2024-05-01T12:34:56.789Z\","
           "\"context\":{\"library\":{\"name\":\"segbus\",\"version\":\"0.1.0\"},\"ip\":"
           "\"203.0.113.7\",\"userAgent\":\"Mozilla/5.0 (X11; Linux x86_64)\",\"page\":{\"url\":"
           "\"https://shop.example.com/checkout\",\"title\":\"Checkout\"}},\"properties\":{"
           "\"order_id\":\"ORD-2024-12345\",\"total\":129.98,\"subtotal\":119.98,\"tax\":10.40,"
           "\"shipping\":5.99,\"discount\":6.39,\"coupon\":\"SAVE10\",\"currency\":\"USD\","
           "\"products\":[" +
           p + "]}}";
}

template <typename F> double ns_per_op(F f, size_t bytes)
{
    // Enough iterations for ~0.3 s per case; best of 3 runs against noise from other jobs.
    size_t iters = 300000000 / (bytes * 20 + 1000) + 100;
    double best = 1e30;
    for (int round = 0; round < 3; round++) {
        auto t0 = std::chrono::steady_clock::now();
        for (size_t i = 0; i < iters; i++)
            f();
        auto t1 = std::chrono::steady_clock::now();
        double ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / (double)iters;
        if (ns < best)
            best = ns;
    }
    return best;
}

} // namespace

int main()
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    simdjson::ondemand::parser od;
    const int sizes[] = {2, 200};
    for (int products : sizes) {
        std::string doc = order_completed(products);
        simdjson::padded_string padded(doc);
        const char *name = products == 2 ? "order_completed" : "order_completed_200_products";
        bool ok = true;
        double dom = ns_per_op(
            [&] {
                sb.size = 0;
                ok &= sb_json_to_msgpack(doc.data(), doc.size(), &pk, nullptr) == 0;
            },
            doc.size());
        double ond = ns_per_op(
            [&] {
                sb.size = 0;
                simdjson::ondemand::document d;
                simdjson::ondemand::value v;
                ok &= !od.iterate(padded).get(d) && !d.get_value().get(v) && !od_pack(v, &pk, 0);
            },
            doc.size());
        double jan = ns_per_op(
            [&] {
                sb.size = 0;
                json_error_t e;
                json_t *j = json_loadb(doc.data(), doc.size(), 0, &e);
                ok &= j != nullptr;
                jansson_pack(j, &pk);
                json_decref(j);
            },
            doc.size());
        if (!ok)
            return 1;
        std::printf("{\"suite\":\"json\",\"case\":\"%s_dom_vs_ondemand\",\"bytes\":%zu,\"unit\":"
                    "\"ns/event\",\"value\":%.0f,\"peer\":\"simdjson on-demand\","
                    "\"peer_value\":%.0f,\"ratio\":%.3f}\n",
                    name, doc.size(), dom, ond, dom / ond);
        std::printf("{\"suite\":\"json\",\"case\":\"%s_dom_vs_jansson\",\"bytes\":%zu,\"unit\":"
                    "\"ns/event\",\"value\":%.0f,\"peer\":\"jansson\",\"peer_value\":%.0f,"
                    "\"ratio\":%.3f}\n",
                    name, doc.size(), dom, jan, dom / jan);
        std::printf("{\"suite\":\"json\",\"case\":\"%s_dom_throughput\",\"unit\":\"MB/s\","
                    "\"value\":%.0f}\n",
                    name, doc.size() / dom * 1e3);
    }
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
