#!/usr/bin/python3
"""journey.py: plays the seed's user journey for --users simulated users through `import segbus`
(analytics-python's API), with a few deliberately broken events, and prints what it sent as JSON.

Deterministic: the same --seed, --users and --prefix give the same events (messageIds included),
so the demo can compute exactly what must arrive."""
import argparse
import json
import random
import sys

import segbus as analytics

PRODUCTS = [("P-%03d" % i, name, price, cat) for i, (name, price, cat) in enumerate([
    ("Espresso Machine", 249.0, "Kitchen"), ("Grinder", 89.5, "Kitchen"),
    ("Running Shoes", 119.99, "Sport"), ("Yoga Mat", 25.0, "Sport"),
    ("Headphones", 199.0, "Audio"), ("Desk Lamp", 39.9, "Home")])]
PLANS = ["free", "pro", "enterprise"]
CURRENCIES = ["USD", "EUR", "GBP"]
INDUSTRIES = ["Retail", "SaaS", "Finance", "Health"]
PAGES = [("Home", "Marketing", "/"), ("Pricing", "Marketing", "/pricing"),
         ("Catalog", "Shop", "/products")]
BROKEN = ["typo_event", "price_string", "missing_order_id", "email_in_properties",
          "duplicate_message_id"]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--prefix", default="py", help="makes user and message ids unique per process")
    ap.add_argument("--broken-every", type=int, default=10,
                    help="every Nth user also sends one broken event (0: none)")
    ap.add_argument("--socket", default=None)
    ap.add_argument("--out", default="-", help="where the JSON counts go (default stdout)")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    c = analytics.Client(socket=a.socket, full_policy="block", block_ms=10000, standalone=False)
    counts = {"by_call": {}, "by_event": {}, "broken": {k: 0 for k in BROKEN}, "sent": 0,
              "failed": 0, "orders": 0, "revenue": {}}
    seq = [0]

    def mid():
        seq[0] += 1
        return "%s-%d-%d" % (a.prefix, a.seed, seq[0])

    def send(call, key, **kw):
        ok, _ = getattr(c, call)(message_id=kw.pop("message_id", None) or mid(), **kw)
        if not ok:
            counts["failed"] += 1
            return
        counts["sent"] += 1
        counts["by_call"][call] = counts["by_call"].get(call, 0) + 1
        if key:
            counts["by_event"][key] = counts["by_event"].get(key, 0) + 1

    for u in range(a.users):
        uid, anon = "%s-user-%d" % (a.prefix, u), "%s-anon-%d" % (a.prefix, u)
        plan, company = rnd.choice(PLANS), "%s-co-%d" % (a.prefix, u % 7)
        for _ in range(1 + rnd.randrange(3)):  # anonymous browsing
            name, cat, url = rnd.choice(PAGES)
            send("page", "Page Viewed", anonymous_id=anon, name=name, category=cat,
                 properties={"name": name, "category": cat, "url": "https://shop.example" + url,
                             "referrer": "https://search.example/"})
        send("track", "Signed Up", user_id=uid, anonymous_id=anon, event="Signed Up",
             properties={"signup_method": rnd.choice(["email", "google", "github"]),
                         "plan_type": plan})
        send("identify", "identify", user_id=uid, anonymous_id=anon, traits={
            "email": "%s@example.com" % uid, "name": "User %d" % u, "plan": plan,
            "company": {"name": company, "id": company, "industry": rnd.choice(INDUSTRIES),
                        "employee_count": 10 + u % 7 * 40},
            "created_at": "2026-11-28T12:00:00Z"})
        send("group", "group", user_id=uid, group_id=company, traits={
            "name": company, "industry": INDUSTRIES[u % 7 % 4], "plan": plan,
            "employee_count": 10 + u % 7 * 40})
        cart = rnd.sample(PRODUCTS, 1 + rnd.randrange(3))
        for pid, name, price, cat in cart:
            send("track", "Product Viewed", user_id=uid, event="Product Viewed",
                 properties={"product_id": pid, "name": name, "price": price, "category": cat})
            send("track", "Product Added", user_id=uid, event="Product Added",
                 properties={"product_id": pid, "name": name, "price": price, "quantity": 1})
        cur = rnd.choice(CURRENCIES)
        total = round(sum(p[2] for p in cart), 2)
        send("track", "Order Completed", user_id=uid, event="Order Completed", properties={
            "order_id": "%s-order-%d" % (a.prefix, u), "total": total, "revenue": total,
            "currency": cur,
            "products": [{"product_id": p[0], "name": p[1], "price": p[2], "quantity": 1}
                         for p in cart]})
        counts["orders"] += 1
        counts["revenue"][cur] = round(counts["revenue"].get(cur, 0) + total, 2)
        send("track", "Feature Activated", user_id=uid, event="Feature Activated",
             properties={"feature_name": "dashboards", "plan_required": "pro"})
        send("page", "Page Viewed", user_id=uid, name="Logout", category="Account",
             properties={"name": "Logout", "category": "Account",
                         "url": "https://shop.example/logout"})
        # reset(): the next visit is a new anonymous visitor
        send("page", "Page Viewed", anonymous_id=anon + "-after-reset", name="Home",
             category="Marketing", properties={"name": "Home", "category": "Marketing",
                                               "url": "https://shop.example/"})
        if a.broken_every and u % a.broken_every == 0:
            kind = BROKEN[(u // a.broken_every) % len(BROKEN)]
            counts["broken"][kind] += 1
            if kind == "typo_event":
                send("track", "Order Complted", user_id=uid, event="Order Complted",
                     properties={"order_id": "x", "total": 1.0, "currency": "USD", "products": []})
            elif kind == "price_string":
                send("track", "Product Added", user_id=uid, event="Product Added",
                     properties={"product_id": "P-000", "name": "Espresso Machine",
                                 "price": "249.00", "quantity": 1})
            elif kind == "missing_order_id":
                send("track", "Order Completed", user_id=uid, event="Order Completed",
                     properties={"total": 5.0, "currency": "USD",
                                 "products": [{"product_id": "P-003", "price": 5.0}]})
            elif kind == "email_in_properties":
                send("track", "Feature Activated", user_id=uid, event="Feature Activated",
                     properties={"feature_name": "export", "email": "%s@example.com" % uid,
                                 "phone": "+1-555-0100", "ip": "192.0.2.1"})
            else:  # the same messageId twice: the second is a duplicate
                dup = mid()
                for _ in range(2):
                    send("track", "Feature Activated", user_id=uid, event="Feature Activated",
                         message_id=dup, properties={"feature_name": "alerts"})
    c.flush(30)
    counts.update(lang="python", prefix=a.prefix, seed=a.seed, users=a.users)
    text = json.dumps(counts, sort_keys=True)
    if a.out == "-":
        print(text)
    else:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
