// send_hub.js: a real Segment client (@segment/analytics-node) sends N events of all six types
// to a segbus hub; prints one JSON line with what the hub answered and how long it took.
// usage: node send_hub.js PORT WRITE_KEY N [PREFIX] [FLUSH_AT]
// SEGBUS_NODE_MAX_RETRIES: the client's maxRetries (default 5; its backoff is capped at 1 s, so
// 40 outlasts a hub restart). "neterrors" counts requests that got no answer (refused, reset).
'use strict';
const { Analytics, FetchHTTPClient } = require('@segment/analytics-node');

const [port, writeKey, nArg, prefix = 'hub-e2e', flushAtArg = '100'] = process.argv.slice(2);
const n = parseInt(nArg, 10);
const statuses = {};
let errors = 0;
let neterrors = 0;
const a = new Analytics({
  writeKey,
  host: `http://127.0.0.1:${port}`,
  path: '/v1/batch',
  maxEventsInBatch: parseInt(flushAtArg, 10),
  flushInterval: 50,
  maxRetries: parseInt(process.env.SEGBUS_NODE_MAX_RETRIES || '5', 10),
  // 2.2.1 emits no http_response: count the hub's answers in the HTTP client itself.
  httpClient: {
    inner: new FetchHTTPClient(),
    async makeRequest(o) {
      let r;
      try {
        r = await this.inner.makeRequest(o);
      } catch (e) {
        neterrors++;
        throw e;
      }
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      return r;
    },
  },
});
a.on('error', () => { errors++; });

const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) {
  const messageId = `${prefix}-${i}`;
  const userId = `u${i}`;
  const context = { test: { seq: i } };
  switch (i % 6) {
    case 0: a.track({ userId, event: 'Order Completed', properties: { seq: i, price: i / 4, tags: ['a', 'b'] }, messageId, context }); break;
    case 1: a.identify({ userId, traits: { seq: i, email: `u${i}@example.com` }, messageId, context }); break;
    case 2: a.page({ anonymousId: `anon${i}`, name: 'Home', properties: { seq: i, path: '/' }, messageId, context }); break;
    case 3: a.screen({ userId, name: 'Settings', properties: { seq: i }, messageId, context }); break;
    case 4: a.group({ userId, groupId: `g${i % 7}`, traits: { seq: i, plan: 'pro' }, messageId, context }); break;
    case 5: a.alias({ userId, previousId: `prev${i}`, messageId, context }); break;
  }
}
a.closeAndFlush({ timeout: 600000 }).then(() => {
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  console.log(JSON.stringify({ events: n, ms, statuses, neterrors, errors }));
  process.exit(errors ? 1 : 0);
});
