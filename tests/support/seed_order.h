/* seed_order.h: the seed's "Order Completed" properties (the e-commerce spec example in
 * ../shared/seed/) built through the public map builder. C and C++: used by the event tests and
 * the client benchmark, so both measure and check the same event. */
#ifndef SEGBUS_TESTS_SEED_ORDER_H
#define SEGBUS_TESTS_SEED_ORDER_H

#include <stddef.h>

#include "segbus/segbus.h"

static inline void seed_product(segbus_map_t *p, const char *id, const char *name, double price,
                                const char *category)
{
    segbus_map_begin_map(p, NULL);
    segbus_map_add_str(p, "product_id", id);
    segbus_map_add_str(p, "name", name);
    segbus_map_add_double(p, "price", price);
    segbus_map_add_int(p, "quantity", 1);
    segbus_map_add_str(p, "category", category);
    segbus_map_add_str(p, "brand", "Acme");
    segbus_map_end(p);
}

/* Adds the properties to p (which the caller resets when it reuses it). */
static inline void seed_order_completed(segbus_map_t *p)
{
    segbus_map_add_str(p, "order_id", "ORD-2024-12345");
    segbus_map_add_double(p, "total", 129.98);
    segbus_map_add_double(p, "subtotal", 119.98);
    segbus_map_add_double(p, "tax", 10.40);
    segbus_map_add_double(p, "shipping", 5.99);
    segbus_map_add_double(p, "discount", 6.39);
    segbus_map_add_str(p, "coupon", "SAVE10");
    segbus_map_add_str(p, "currency", "USD");
    segbus_map_begin_array(p, "products");
    seed_product(p, "SKU-12345", "Premium Widget", 49.99, "Widgets");
    seed_product(p, "SKU-67890", "Deluxe Gadget", 79.99, "Gadgets");
    segbus_map_end(p);
}

#endif
