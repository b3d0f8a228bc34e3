// node_peer.mjs: the peer of bench/client's Python rows: Segment's own Node SDK
// (@segment/analytics-node, installed by bench/client/run from package.json) doing
// analytics.track() of the seed's "Order Completed" event, posting its batches to a loopback HTTP
// server in another process (so that server's work is not counted).
// Prints one JSON object: sync_ns (median cost of the track() call itself, per call) and cpu_ns
// (median CPU time of this process per event until every track()'s callback fired, i.e. its batch
// was accepted: the SDK's whole in-process cost, HTTP included; waiting is not counted).
import { spawn } from 'node:child_process';
import { Analytics } from '@segment/analytics-node';

const ORDER = JSON.parse(process.argv[2]);
const N = Number(process.argv[3] || 1000);
const ROUNDS = Number(process.argv[4] || 60);
const WARM = 5;

const server = spawn(process.execPath, ['-e', `
  require('http').createServer((q, s) => { q.resume(); q.on('end', () => {
    s.writeHead(200, {'content-type': 'application/json'}); s.end('{"success":true}'); }); })
  .listen(0, '127.0.0.1', function () { console.log(this.address().port); });`],
  { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise((resolve) => server.stdout.once('data', (d) => resolve(Number(d))));

const analytics = new Analytics({
  writeKey: 'bench', host: `http://127.0.0.1:${port}`, maxEventsInBatch: 100, flushInterval: 50,
});
analytics.on('error', (e) => { console.error('analytics-node error', e); process.exit(1); });

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const sync = [], cpu = [];
for (let r = 0; r < WARM + ROUNDS; r++) {
  let done = 0, failed = 0;
  let finished;
  const all = new Promise((resolve) => { finished = resolve; });
  const cb = (err) => { if (err) failed++; if (++done === N) finished(); };
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    analytics.track({ userId: 'user-1', event: 'Order Completed', properties: ORDER }, cb);
  }
  const t1 = process.hrtime.bigint();
  await all;
  const c1 = process.cpuUsage(c0);
  if (failed) { console.error(`analytics-node: ${failed} events failed`); process.exit(1); }
  if (r >= WARM) {
    sync.push(Number(t1 - t0) / N);
    cpu.push(((c1.user + c1.system) * 1000) / N);
  }
}
await analytics.closeAndFlush({ timeout: 5000 });
server.kill();
console.log(JSON.stringify({ sync_ns: median(sync), cpu_ns: median(cpu), events: N * (WARM + ROUNDS) }));
