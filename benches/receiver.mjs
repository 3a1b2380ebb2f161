// A plain webhook receiver for benches/delivery.sh: an out-of-process Node.js HTTP server
// (keep-alive, as a real subscriber's would be) that answers 204 to every POST and notes, per
// delivery, the subscription (the path), the `webhook-id` and the arrival time on the
// monotonic clock that `process.hrtime` shares with every process of the machine, so the load
// generator's acknowledgement times compare with it. It must never verify, store or log a
// body: its own cost must stay small and flat.
//
//   node benches/receiver.mjs [port]     # prints "receiver listening on <port>"
//
//   GET /count  -> the number of deliveries so far
//   GET /loop-delay -> {"p50","p99","max"}: how late its event loop ran, in ms (sampled
//                      every 5 ms; the timer's own 5 ms is included)
//   GET /connections -> the number of TCP connections accepted so far (a sender that keeps
//                       them alive opens about one per subscription, not one per delivery)
//   GET /dump   -> NDJSON lines [path, webhook-id, arrival ns]
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const port = Number(process.argv[2] ?? 0);
// Flat arrays: one object per delivery would put the receiver's GC in the measurement.
const paths = [];
const ids = [];
const times = [];
let connections = 0;
// How late the receiver's own event loop ran (GC pauses, losing the core): a stall here
// delays every subscription at once, and is not the server's.
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();

const server = http.createServer((req, res) => {
  if (req.method === 'POST') {
    const at = process.hrtime.bigint();
    paths.push(req.url);
    ids.push(req.headers['webhook-id'] ?? '');
    times.push(at);
    req.resume();
    req.on('end', () => {
      res.writeHead(204);
      res.end();
    });
    return;
  }
  if (req.url === '/count') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(String(times.length));
    return;
  }
  if (req.url === '/loop-delay') {
    res.writeHead(200, { 'content-type': 'application/json' });
    const ms = (ns) => Number(ns) / 1e6;
    res.end(
      JSON.stringify({ p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) }),
    );
    return;
  }
  if (req.url === '/connections') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(String(connections));
    return;
  }
  if (req.url === '/dump') {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    const n = times.length;
    let chunk = '';
    for (let i = 0; i < n; i++) {
      chunk += JSON.stringify([paths[i], ids[i], times[i].toString()]) + '\n';
      if (chunk.length > 1 << 16) {
        res.write(chunk);
        chunk = '';
      }
    }
    res.end(chunk);
    return;
  }
  res.writeHead(404);
  res.end();
});
server.on('connection', () => {
  connections++;
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.listen(port, '127.0.0.1', () => {
  console.log(`receiver listening on ${server.address().port}`);
});
