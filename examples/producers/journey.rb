#!/usr/bin/env ruby
# journey.rb: plays the seed's user journey for --users simulated users through `require "segbus"`
# (analytics-ruby's API), with a few deliberately broken events, and prints what it sent as JSON.
# Deterministic: the same --seed, --users and --prefix give the same events (messageIds included).
require 'json'
require 'optparse'
require 'segbus'

opts = { users: 100, seed: 1, prefix: 'rb', broken_every: 10, socket: nil, out: '-' }
OptionParser.new do |o|
  o.banner = 'usage: journey.rb [--users N] [--seed S] [--prefix P] [--broken-every N] [--socket PATH] [--out FILE]'
  o.on('--users N', Integer) { |v| opts[:users] = v }
  o.on('--seed N', Integer) { |v| opts[:seed] = v }
  o.on('--prefix P') { |v| opts[:prefix] = v }
  o.on('--broken-every N', Integer) { |v| opts[:broken_every] = v }
  o.on('--socket PATH') { |v| opts[:socket] = v }
  o.on('--out FILE') { |v| opts[:out] = v }
end.parse!

PRODUCTS = [['Espresso Machine', 249.0, 'Kitchen'], ['Grinder', 89.5, 'Kitchen'],
            ['Running Shoes', 119.99, 'Sport'], ['Yoga Mat', 25.0, 'Sport'],
            ['Headphones', 199.0, 'Audio'], ['Desk Lamp', 39.9, 'Home']]
            .each_with_index.map { |(n, p, c), i| [format('P-%03d', i), n, p, c] }
PLANS = %w[free pro enterprise].freeze
CURRENCIES = %w[USD EUR GBP].freeze
INDUSTRIES = %w[Retail SaaS Finance Health].freeze
PAGES = [['Home', 'Marketing', '/'], ['Pricing', 'Marketing', '/pricing'], ['Catalog', 'Shop', '/products']].freeze
BROKEN = %w[typo_event price_string missing_order_id email_in_properties duplicate_message_id].freeze

rnd = Random.new(opts[:seed])
pre = opts[:prefix]
client_opts = { full_policy: :block, block_ms: 10_000, standalone: false }
client_opts[:socket] = opts[:socket] if opts[:socket]
analytics = Segbus::Analytics.new(client_opts)
counts = { 'by_call' => Hash.new(0), 'by_event' => Hash.new(0), 'broken' => BROKEN.to_h { |k| [k, 0] },
           'sent' => 0, 'failed' => 0, 'orders' => 0, 'revenue' => Hash.new(0.0) }
seq = 0
mid = -> { seq += 1; "#{pre}-#{opts[:seed]}-#{seq}" }
send_ev = lambda do |call, key, msg|
  msg[:message_id] ||= mid.call
  if analytics.public_send(call, msg)
    counts['sent'] += 1
    counts['by_call'][call.to_s] += 1
    counts['by_event'][key] += 1
  else
    counts['failed'] += 1
  end
end

opts[:users].times do |u|
  uid = "#{pre}-user-#{u}"
  anon = "#{pre}-anon-#{u}"
  plan = PLANS[rnd.rand(PLANS.size)]
  company = "#{pre}-co-#{u % 7}"
  (1 + rnd.rand(3)).times do
    name, cat, url = PAGES[rnd.rand(PAGES.size)]
    send_ev.call(:page, 'Page Viewed', anonymous_id: anon, name: name, category: cat,
                 properties: { name: name, category: cat, url: "https://shop.example#{url}",
                               referrer: 'https://search.example/' })
  end
  send_ev.call(:track, 'Signed Up', user_id: uid, anonymous_id: anon, event: 'Signed Up',
               properties: { signup_method: %w[email google github][rnd.rand(3)], plan_type: plan })
  send_ev.call(:identify, 'identify', user_id: uid, anonymous_id: anon,
               traits: { email: "#{uid}@example.com", name: "User #{u}", plan: plan,
                         company: { name: company, id: company, industry: INDUSTRIES[rnd.rand(4)],
                                    employee_count: 10 + u % 7 * 40 },
                         created_at: '2026-11-28T12:00:00Z' })
  send_ev.call(:group, 'group', user_id: uid, group_id: company,
               traits: { name: company, industry: INDUSTRIES[u % 7 % 4], plan: plan,
                         employee_count: 10 + u % 7 * 40 })
  cart = PRODUCTS.sample(1 + rnd.rand(3), random: rnd)
  cart.each do |pid, name, price, cat|
    send_ev.call(:track, 'Product Viewed', user_id: uid, event: 'Product Viewed',
                 properties: { product_id: pid, name: name, price: price, category: cat })
    send_ev.call(:track, 'Product Added', user_id: uid, event: 'Product Added',
                 properties: { product_id: pid, name: name, price: price, quantity: 1 })
  end
  cur = CURRENCIES[rnd.rand(3)]
  total = cart.sum { |p| p[2] }.round(2)
  send_ev.call(:track, 'Order Completed', user_id: uid, event: 'Order Completed',
               properties: { order_id: "#{pre}-order-#{u}", total: total, revenue: total, currency: cur,
                             products: cart.map { |p| { product_id: p[0], name: p[1], price: p[2], quantity: 1 } } })
  counts['orders'] += 1
  counts['revenue'][cur] = (counts['revenue'][cur] + total).round(2)
  send_ev.call(:track, 'Feature Activated', user_id: uid, event: 'Feature Activated',
               properties: { feature_name: 'dashboards', plan_required: 'pro' })
  send_ev.call(:page, 'Page Viewed', user_id: uid, name: 'Logout', category: 'Account',
               properties: { name: 'Logout', category: 'Account', url: 'https://shop.example/logout' })
  # reset: the next visit is a new anonymous visitor
  send_ev.call(:page, 'Page Viewed', anonymous_id: "#{anon}-after-reset", name: 'Home', category: 'Marketing',
               properties: { name: 'Home', category: 'Marketing', url: 'https://shop.example/' })
  next unless opts[:broken_every].positive? && (u % opts[:broken_every]).zero?

  kind = BROKEN[(u / opts[:broken_every]) % BROKEN.size]
  counts['broken'][kind] += 1
  case kind
  when 'typo_event'
    send_ev.call(:track, 'Order Complted', user_id: uid, event: 'Order Complted',
                 properties: { order_id: 'x', total: 1.0, currency: 'USD', products: [] })
  when 'price_string'
    send_ev.call(:track, 'Product Added', user_id: uid, event: 'Product Added',
                 properties: { product_id: 'P-000', name: 'Espresso Machine', price: '249.00', quantity: 1 })
  when 'missing_order_id'
    send_ev.call(:track, 'Order Completed', user_id: uid, event: 'Order Completed',
                 properties: { total: 5.0, currency: 'USD', products: [{ product_id: 'P-003', price: 5.0 }] })
  when 'email_in_properties'
    send_ev.call(:track, 'Feature Activated', user_id: uid, event: 'Feature Activated',
                 properties: { feature_name: 'export', email: "#{uid}@example.com", phone: '+1-555-0100',
                               ip: '192.0.2.1' })
  else # the same messageId twice: the second is a duplicate
    dup = mid.call
    2.times do
      send_ev.call(:track, 'Feature Activated', user_id: uid, event: 'Feature Activated', message_id: dup,
                   properties: { feature_name: 'alerts' })
    end
  end
end
analytics.flush
counts.merge!('lang' => 'ruby', 'prefix' => pre, 'seed' => opts[:seed], 'users' => opts[:users])
text = JSON.generate(counts)
opts[:out] == '-' ? puts(text) : File.write(opts[:out], "#{text}\n")
exit(counts['failed'].zero? ? 0 : 1)
