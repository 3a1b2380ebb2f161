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
//   GET /connections -> the number of TCP connections accepted so far (a sender that keeps
//                       them alive opens about one per subscription, not one per delivery)
//   GET /dump   -> NDJSON lines [path, webhook-id, arrival ns]
import http from 'node:http';

const port = Number(process.argv[2] ?? 0);
// Flat arrays: one object per delivery would put the receiver's GC in the measurement.
const paths = [];
const ids = [];
const times = [];
let connections = 0;

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
