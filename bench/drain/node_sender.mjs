// node_sender.mjs: the peer of bench/drain's delivered-events case: Segment's own Node SDK
// (@segment/analytics-node, installed into bench/client/node_modules by the run scripts) doing
// analytics.track() of the events drain_producer sends (same fields, properties.t_ns = enqueue
// time in CLOCK_MONOTONIC ns) as fast as it takes them, to the same receiver on loopback.
//   node node_sender.mjs MODULES_PACKAGE_JSON PORT COUNT
// Prints one JSON object once every callback fired (every batch accepted).
import { createRequire } from 'node:module';

const require = createRequire(process.argv[2]);
const { Analytics } = require('@segment/analytics-node');
const PORT = Number(process.argv[3]);
const N = Number(process.argv[4] || 20000);

const analytics = new Analytics({
  writeKey: 'bench', host: `http://127.0.0.1:${PORT}`, maxEventsInBatch: 100, flushInterval: 100,
});
analytics.on('error', (e) => { console.error('analytics-node error', e); process.exit(1); });

let done = 0, failed = 0, finished;
const all = new Promise((resolve) => { finished = resolve; });
const cb = (err) => { if (err) failed++; if (++done === N) finished(); };
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  analytics.track({
    userId: 'user-000042', event: 'Order Completed',
    properties: { order_id: 'ORD-2024-12345', total: 129.98, currency: 'USD', note: 'xxxxx',
                  t_ns: Number(process.hrtime.bigint()) },
  }, cb);
  // Yield now and then, as an application serving requests would, so batches go out meanwhile.
  if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
}
const t1 = process.hrtime.bigint();
await all;
await analytics.closeAndFlush({ timeout: 10000 });
const t2 = process.hrtime.bigint();
console.log(JSON.stringify({ sent: N, failed, enqueue_s: Number(t1 - t0) / 1e9,
                             done_s: Number(t2 - t0) / 1e9 }));
