// The load generator and report of benches/delivery.sh (issue 13, "Webhook delivery costs
// little"): against a running `annals serve` and a running benches/receiver.mjs, it creates N
// subscriptions, appends batches of 10 events every 10 ms for a bounded time, notes each
// event's acknowledgement time (the 201 read) on the machine's monotonic clock, then matches
// the receiver's arrivals by event id and prints ack -> receiver latency (p50/p99/max),
// deliveries/s, the lag during and at the end of the load, and the server's CPU per delivery
// (utime + stime from /proc/PID/stat over the run, divided by the deliveries). It must never
// reach beyond loopback, and every wait in it is bounded.
//
//   node benches/delivery.mjs <base url> <key> <receiver port> <server pid> <subs> <secs> [batch] [every ms]
import fs from 'node:fs';

const [base, key, rport, pid, subsArg, secsArg, batchArg, everyArg] = process.argv.slice(2);
const subs = Number(subsArg ?? 10);
const secs = Number(secsArg ?? 10);
const batch = Number(batchArg ?? 10);
const every = Number(everyArg ?? 10);
const receiver = `http://127.0.0.1:${rport}`;
const SOURCE = 'src:bench-delivery';
// After the load, how long the deliveries still owed may take to arrive.
const DRAIN_LIMIT_MS = 60_000;
const CLK_TCK = 100;
// Deliveries slower than this are the tail whose shape is printed (episodes, period); the
// first TAIL_LINES episodes are listed.
const SLOW_MS = Number(process.env.SLOW_MS ?? 20);
const TAIL_LINES = Number(process.env.TAIL_LINES ?? 12);
// The server's log with stage times (benches/delivery.sh sets it with STAGES=1).
const STAGES_LOG = process.env.STAGES_LOG;
// What is warmed before the measured load (a comma list): `receiver` (this many POSTs
// straight to the receiver, so its V8 code is optimised before the server's first delivery),
// `server` (one event delivered to every subscription first: the server's connections and
// every lazily built part exist before the load). Empty: the load starts cold.
const WARMUP = (process.env.WARMUP ?? 'receiver,server').split(',').filter(Boolean);
const WARMUP_POSTS = Number(process.env.WARMUP_POSTS ?? 20000);
// The subscriptions' delivery mode: `ordered` (one request in flight per subscription, so its
// rate is capped by the round trip) or `parallel` with IN_FLIGHT requests at once (the
// server's default, 8, when unset).
const MODE = process.env.MODE || 'ordered';
if (MODE !== 'ordered' && MODE !== 'parallel') throw new Error(`MODE must be ordered or parallel, got ${MODE}`);
// Ignored in ordered mode (one in flight), so MODES="ordered parallel" can share one IN_FLIGHT.
const IN_FLIGHT = MODE === 'parallel' && process.env.IN_FLIGHT ? Number(process.env.IN_FLIGHT) : undefined;

const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
const nowNs = () => process.hrtime.bigint();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(method, path, body) {
  const resp = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (resp.status >= 300) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Server CPU seconds so far (user + system), from /proc/PID/stat. */
function cpuSecs() {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of the man page; the slice starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** The file `name` of each of the server's threads (a thread gone since the listing is
 * skipped). */
function* taskFiles(name) {
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      yield fs.readFileSync(`/proc/${pid}/task/${tid}/${name}`, 'utf8');
    } catch {
      continue;
    }
  }
}

/** Server CPU seconds so far per thread name (threads of one name summed; exited threads
 * are not listed, so this is a split of the work, not a total). */
function cpuByThread() {
  const out = new Map();
  for (const stat of taskFiles('stat')) {
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const secs = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    out.set(name, (out.get(name) ?? 0) + secs);
  }
  return out;
}

/** Context switches (voluntary + involuntary) so far of the server's delivery threads
 * (`annals-webhooks`): each voluntary one is the thread parking with nothing to run and a
 * wake-up after it, the cost the delivery threads pay per round trip when they are idle. A
 * count, which the machine's load disturbs less than CPU times. */
function deliveryCounts() {
  const n = { switches: 0 };
  for (const status of taskFiles('status')) {
    if (!/^Name:\s+annals-webhooks$/m.test(status)) continue;
    for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n.switches += Number(m[1]);
  }
  return n;
}

async function received() {
  return Number(await (await fetch(`${receiver}/count`)).text());
}

/** TCP connections the receiver has accepted (ours included: one per fetch at most). */
async function connections() {
  return Number(await (await fetch(`${receiver}/connections`)).text());
}

function statement(n) {
  return {
    type: 'statement.made',
    occurred: { start: '2026-01-22', precision: 'day' },
    process: 'ru-ua-peace',
    data: {
      statement_id: `statement:delivery-${n}`,
      speaker: 'actor:witkoff',
      content: `Statement number ${n} on the talks, as the wire reported it.`,
    },
    evidence: [{ source: SOURCE, relation: 'quotes', quote: `number ${n}` }],
  };
}

/** The shape of the tail: the deliveries slower than SLOW_MS, grouped into episodes (acks
 * less than 50 ms apart), each with its start (ms into the load), length, deliveries, the
 * subscriptions it touched and its worst latency, then the gaps between episodes. A stall of
 * every subscription at a steady period points at something periodic in the server (or the
 * receiver); one subscription at a time points at its own task. */
function tail(slow, total) {
  if (slow.length === 0) {
    console.log(`  tail: no delivery over ${SLOW_MS} ms`);
    return;
  }
  slow.sort((a, b) => a.ack - b.ack);
  const episodes = [];
  for (const s of slow) {
    const e = episodes[episodes.length - 1];
    if (e && s.ack - e.end < 50) {
      e.end = s.ack;
      e.n++;
      e.subs.add(s.path);
      e.max = Math.max(e.max, s.d);
    } else {
      episodes.push({ start: s.ack, end: s.ack, n: 1, subs: new Set([s.path]), max: s.d });
    }
  }
  const gaps = episodes.slice(1).map((e, i) => Math.round(e.start - episodes[i].start));
  console.log(
    `  tail: ${slow.length} of ${total} deliveries over ${SLOW_MS} ms, in ${episodes.length} episodes ` +
      `(gaps between their starts, ms: ${gaps.slice(0, 40).join(' ')}${gaps.length > 40 ? ' ...' : ''})`,
  );
  for (const e of episodes.slice(0, TAIL_LINES)) {
    console.log(
      `    at ${e.start.toFixed(0)} ms for ${(e.end - e.start).toFixed(0)} ms: ${e.n} deliveries, ` +
        `${e.subs.size} subscriptions, worst ${e.max.toFixed(1)} ms`,
    );
  }
}

/** Where the slow deliveries spent their time, from the server's stage log (STAGES_LOG: its
 * log with `annals::webhook::stages` at debug): per stage, the mean and worst milliseconds
 * over the slow deliveries. ack -> seen is the head reaching the task (negative: seen before
 * the ack), seen -> queued the task's own queue, queued -> sent the attempt's set-up (pacing,
 * signing), sent -> arrival the request reaching the receiver, arrival -> answered the
 * answer coming back. */
function stages(slow, subOf, seqOf) {
  const times = new Map();
  const re = /subscription=(\S+) seq=(\d+) seen_ns=(\d+) queued_ns=(\d+) read_ns=(\d+) sent_ns=(\d+) answered_ns=(\d+)/;
  const reSync = /started_ns=(\d+) ended_ns=(\d+) webhook store sync|webhook store sync.*started_ns=(\d+) ended_ns=(\d+)/;
  const syncs = [];
  // The server's log may be coloured (ANSI escapes around field names).
  const text = fs.readFileSync(STAGES_LOG, 'utf8').replace(/\x1b\[[0-9;]*m/g, '');
  for (const line of text.split('\n')) {
    const y = reSync.exec(line);
    if (y) syncs.push([BigInt(y[1] ?? y[3]), BigInt(y[2] ?? y[4])]);
    const m = re.exec(line);
    if (!m) continue;
    times.set(`${m[1]} ${m[2]}`, [BigInt(m[3]), BigInt(m[4]), BigInt(m[6]), BigInt(m[7]), BigInt(m[5])]);
  }
  const names = ['ack -> seen', 'seen -> queued', 'queued -> sent', 'sent -> arrival', 'arrival -> answered'];
  const sum = names.map(() => 0);
  const worst = names.map(() => -Infinity);
  let n = 0;
  for (const s of slow) {
    const t = times.get(`${subOf.get(s.path)} ${seqOf.get(s.id)}`);
    if (!t) continue;
    const [seen, queued, sent, answered] = t;
    const parts = [seen - s.ackNs, queued - seen, sent - queued, s.atNs - sent, answered - s.atNs].map(
      (x) => Number(x) / 1e6,
    );
    parts.forEach((x, i) => {
      sum[i] += x;
      worst[i] = Math.max(worst[i], x);
    });
    n++;
  }
  // The first slow delivery of each episode (acks 50 ms apart) shows what started it: the
  // ones after it mostly queue behind it.
  const firsts = [];
  let last = -Infinity;
  for (const s of [...slow].sort((a, b) => a.ack - b.ack)) {
    if (s.ack - last >= 50) firsts.push(s);
    last = s.ack;
  }
  for (const s of firsts.slice(0, TAIL_LINES)) {
    const t = times.get(`${subOf.get(s.path)} ${seqOf.get(s.id)}`);
    if (!t) continue;
    const [seen, queued, sent, answered, read] = t;
    const parts = [seen - s.ackNs, queued - seen, sent - queued, s.atNs - sent, answered - s.atNs];
    // A store sync that ran while this delivery was owed.
    const sync = syncs.find(([a, b]) => a < s.atNs && b > s.ackNs);
    console.log(
      `    episode at ${s.ack.toFixed(0)} ms starts with ${s.d.toFixed(1)} ms: ` +
        names.map((name, i) => `${name} ${(Number(parts[i]) / 1e6).toFixed(1)}`).join(', ') +
        `; its read ${(Number(read) / 1e6).toFixed(1)} ms` +
        (sync ? `; a store sync of ${(Number(sync[1] - sync[0]) / 1e6).toFixed(1)} ms overlapped` : ''),
    );
  }
  // Each subscription's pipeline, message after message: a message already seen when the one
  // before it was answered should be sent at once, so the time from that answer to its send
  // is the server's own dead time; its send to its answer is the round trip (network and
  // receiver). The longest of each say which side stalled.
  const bySub = new Map();
  for (const [k, t] of times) {
    const [sub, seq] = k.split(' ');
    if (!bySub.has(sub)) bySub.set(sub, []);
    bySub.get(sub).push([Number(seq), ...t]);
  }
  const dead = [];
  const rtt = [];
  const t0s = [...times.values()].reduce((m, t) => (t[0] > 0n && t[0] < m ? t[0] : m), BigInt(Number.MAX_SAFE_INTEGER) * 1000n);
  for (const list of bySub.values()) {
    list.sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < list.length; i++) {
      const [, seen, , sent, answered] = list[i];
      rtt.push([Number(answered - sent) / 1e6, Number(sent - t0s) / 1e6]);
      if (i > 0) {
        const prev = list[i - 1][4];
        if (seen <= prev) dead.push([Number(sent - prev) / 1e6, Number(prev - t0s) / 1e6]);
      }
    }
  }
  const top = (xs) =>
    xs
      .sort((a, b) => b[0] - a[0])
      .slice(0, 6)
      .map(([d, at]) => `${d.toFixed(1)} ms at ${at.toFixed(0)}`)
      .join(', ');
  console.log(`  longest server dead times (answer -> next send, backlog waiting): ${top(dead)}`);
  console.log(`  longest round trips (send -> answer): ${top(rtt)}`);
  const reads = [...times.values()].map((t) => Number(t[4]) / 1e6);
  console.log(
    `  log reads on the delivery threads: max ${reads.reduce((m, r) => Math.max(m, r), 0).toFixed(1)} ms, ${reads.filter((r) => r > 5).length} over 5 ms`,
  );
  if (syncs.length > 0) {
    const d = syncs.map(([a, b]) => Number(b - a) / 1e6).sort((a, b) => a - b);
    console.log(`  store syncs: ${d.length}, p50 ${pct(d, 0.5).toFixed(1)} ms, max ${d[d.length - 1].toFixed(1)} ms`);
  }
  console.log(`  stages of the ${n} slow deliveries found in the stage log (${times.size} logged), mean / worst ms:`);
  console.log(`    ${names.map((name, i) => `${name} ${(sum[i] / Math.max(1, n)).toFixed(1)} / ${worst[i].toFixed(1)}`).join(', ')}`);
}

const STAGE_NAMES = ['seen_to_prepared', 'prepared_to_queued', 'queued_to_sent', 'sent_to_answered'];

/** The server's `webhook_stage_seconds` sums and counts per stage (null when /metrics has
 * none: an older binary). */
async function stageTotals() {
  let text;
  try {
    const resp = await fetch(`${base}/metrics`, { headers });
    text = await resp.text();
  } catch {
    return null;
  }
  const out = {};
  for (const name of STAGE_NAMES) {
    const sum = new RegExp(`webhook_stage_seconds_sum\\{stage="${name}"\\} (\\S+)`).exec(text);
    const count = new RegExp(`webhook_stage_seconds_count\\{stage="${name}"\\} (\\S+)`).exec(text);
    if (!sum || !count) return null;
    out[name] = [Number(sum[1]), Number(count[1])];
  }
  return out;
}

/** Per second of the load (from the server's `webhook_stage_seconds`), the mean ms each
 * first attempt spent in each stage: says which stage a start episode sits in. */
function printStageSeconds(first, samples, last) {
  if (!first || !last) {
    console.log('  stage means per second: the server has no webhook_stage_seconds');
    return;
  }
  const points = [first, ...samples.filter(Boolean), last];
  const rows = [];
  for (let i = 1; i < points.length; i++) {
    const [a, b] = [points[i - 1], points[i]];
    const cells = STAGE_NAMES.map((n) => {
      const dn = b[n][1] - a[n][1];
      return dn > 0 ? (((b[n][0] - a[n][0]) / dn) * 1000).toFixed(2) : '-';
    });
    rows.push(`[${cells.join(' ')}]`);
  }
  console.log(`  stage means per second, ms [${STAGE_NAMES.join(' ')}]: ${rows.join(' ')}`);
}

function pct(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.round((sorted.length - 1) * p)];
}

/** The mode as the server made the subscriptions (for the report). */
let modeName = MODE;

/** CPU seconds so far of the bench's own processes, this generator and the receiver
 * (RECEIVER_PID, set by benches/delivery.sh): they share the machine's cores with the server,
 * so a generator or receiver near a full core limits what the run can show. */
function benchCpu() {
  const one = (p) => {
    try {
      const stat = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    } catch {
      return NaN;
    }
  };
  return { generator: one(process.pid), receiver: RECEIVER_PID ? one(RECEIVER_PID) : NaN };
}
const RECEIVER_PID = process.env.RECEIVER_PID;

async function main() {
  await call('POST', '/streams/registry%2Fsources/events', {
    type: 'source.registered',
    occurred: { start: '2026-01-22', precision: 'day' },
    data: { source_id: SOURCE, kind: 'wire', publisher: 'Bench Wire' },
    evidence: [],
  });
  // The statements' speaker: every actor a statement names must be registered.
  await call('POST', '/streams/registry%2Factors/events', {
    type: 'actor.registered',
    data: { actor_id: 'actor:witkoff', name: 'Steve Witkoff', kind: 'person' },
    evidence: [{ source: SOURCE, relation: 'reports' }],
  });
  // The subscription id behind each receiver path, to match the server's stage times.
  const subOf = new Map();
  for (let i = 0; i < subs; i++) {
    const spec = { url: `${receiver}/hook/${i}`, mode: MODE };
    if (IN_FLIGHT !== undefined) spec.max_in_flight = IN_FLIGHT;
    const created = await call('POST', '/subscriptions', spec);
    if (created.mode !== MODE) throw new Error(`the server made a ${created.mode} subscription, not ${MODE}`);
    subOf.set(`/hook/${i}`, created.id);
    modeName = MODE === 'parallel' ? `parallel, ${created.max_in_flight} in flight` : 'ordered';
  }
  if (WARMUP.includes('receiver')) {
    // The receiver's own warm-up, from this process: no server work, so a start episode that
    // goes away with it was the receiver's cold code, not the server's.
    let left = WARMUP_POSTS;
    const one = async () => {
      while (left-- > 0) {
        const r = await fetch(`${receiver}/warm`, { method: 'POST', headers: { 'webhook-id': 'warm' }, body: '{}' });
        await r.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: subs }, one));
  }
  if (WARMUP.includes('server')) {
    const before = await received();
    await call('POST', '/streams/process%2Fru-ua-peace/events', { events: [statement(999999999)] });
    const until = Date.now() + 10_000;
    while ((await received()) - before < subs && Date.now() < until) await sleep(10);
  }
  if (WARMUP.length > 0) console.log(`  warmed up first: ${WARMUP.join(', ')} (WARMUP=${WARMUP.join(',')}; WARMUP= for a cold start)`);
  const base0 = await received();
  const conns0 = await connections();
  const acks = new Map();
  const seqOf = new Map();
  const inflight = new Set();
  let failed = 0;
  let n = 0;
  const samples = [];
  const batches = Math.round((secs * 1000) / every);
  const cpu0 = cpuSecs();
  const bench0 = benchCpu();
  const threads0 = cpuByThread();
  const counts0 = deliveryCounts();
  const t0 = nowNs();
  const stage0 = await stageTotals();
  const stageSamples = [];
  const sampler = setInterval(async () => {
    const got = await received();
    samples.push(acks.size * subs - (got - base0));
    stageSamples.push(await stageTotals());
  }, 1000);
  for (let b = 0; b < batches; b++) {
    const due = t0 + BigInt(Math.round(b * every * 1e6));
    const wait = Number(due - nowNs()) / 1e6;
    if (wait > 0) await sleep(wait);
    const events = [];
    for (let i = 0; i < batch; i++) events.push(statement(n++));
    const p = call('POST', '/streams/process%2Fru-ua-peace/events', { events })
      .then((r) => {
        const at = nowNs();
        for (const e of r.events) {
          acks.set(e.id, at);
          seqOf.set(e.id, e.seq);
        }
      })
      .catch(() => {
        failed++;
      });
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  }
  await Promise.all([...inflight]);
  clearInterval(sampler);
  const tLoad = nowNs();
  const loadSecs = Number(tLoad - t0) / 1e9;
  const expected = acks.size * subs;
  const atEnd = (await received()) - base0;
  const views = (await call('GET', '/subscriptions')).subscriptions;
  const serverLag = views.reduce((s, v) => s + v.lag, 0);
  const drainStart = Date.now();
  let got = atEnd;
  while (got < expected && Date.now() - drainStart < DRAIN_LIMIT_MS) {
    await sleep(20);
    got = (await received()) - base0;
  }
  const drained = (Date.now() - drainStart) / 1000;
  const cpu = cpuSecs() - cpu0;
  const bench1 = benchCpu();
  const threads1 = cpuByThread();
  const counts1 = deliveryCounts();
  const switches = counts1.switches - counts0.switches;
  const runSecs = Number(nowNs() - t0) / 1e9;

  const conns = (await connections()) - conns0;
  const dump = await (await fetch(`${receiver}/dump`)).text();
  const lat = [];
  const slow = [];
  let early = 0;
  for (const line of dump.split('\n')) {
    if (!line) continue;
    const [path, id, at] = JSON.parse(line);
    const ack = acks.get(id);
    if (ack === undefined) continue;
    const d = Number(BigInt(at) - ack) / 1e6;
    // The head moves before the 201 travels back, so a delivery may beat its ack.
    if (d < 0) early++;
    lat.push(Math.max(0, d));
    if (d > SLOW_MS) slow.push({ path, id, ack: Number(ack - t0) / 1e6, d, ackNs: ack, atNs: BigInt(at) });
  }
  lat.sort((a, b) => a - b);
  const q = (i) => samples[Math.min(samples.length - 1, Math.floor((samples.length * i) / 4))] ?? 0;
  const f = (x) => x.toFixed(2);
  console.log(
    `delivery: ${subs} subscriptions (${modeName}), ${batch} events every ${every} ms ` +
      `(${Math.round((batch * 1000) / every)} events/s, ${Math.round((batch * 1000 * subs) / every)} deliveries/s offered) for ${f(loadSecs)} s`,
  );
  console.log(`  events acked ${acks.size} (failed batches ${failed}); deliveries expected ${expected}, received ${got}`);
  console.log(
    `  ack -> receiver latency over ${lat.length} deliveries: p50 ${f(pct(lat, 0.5))} ms, p99 ${f(pct(lat, 0.99))} ms, ` +
      `max ${f(lat[lat.length - 1] ?? 0)} ms (${early} arrived before their ack, counted as 0)   [target p99 <= 20 ms]`,
  );
  console.log(
    `  deliveries/s during the load ${Math.round(atEnd / loadSecs)}; lag (deliveries owed) at 1/4, 1/2, 3/4 and the end ` +
      `of the load: ${q(1)} ${q(2)} ${q(3)} ${expected - atEnd}; server lag (sum of subscription lags) ${serverLag}; ` +
      `drained ${f(drained)} s after the load   [target: no growing lag]`,
  );
  console.log(
    `  server CPU ${f(cpu)} s over ${f(runSecs)} s (${f(cpu / runSecs)} cores); per delivery ${f((cpu * 1e6) / Math.max(1, got))} us`,
  );
  console.log(
    `  bench CPU over the run: generator ${f(bench1.generator - bench0.generator)} s (${f((bench1.generator - bench0.generator) / runSecs)} cores), ` +
      `receiver ${f(bench1.receiver - bench0.receiver)} s (${f((bench1.receiver - bench0.receiver) / runSecs)} cores); ` +
      `machine load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  const split = [...threads1]
    .map(([name, secs]) => [name, secs - (threads0.get(name) ?? 0)])
    .filter(([, secs]) => secs >= 0.01)
    .sort((a, b) => b[1] - a[1])
    .map(([name, secs]) => `${name} ${f(secs)} s (${f((secs * 1e6) / Math.max(1, got))} us/delivery)`);
  console.log(`  server CPU by thread: ${split.join(', ')}`);
  console.log(
    `  delivery threads' context switches: ${switches} (${f(switches / Math.max(1, got))} per delivery: wake-ups after parking, mostly)`,
  );
  tail(slow, lat.length);
  const loop = await (await fetch(`${receiver}/loop-delay`)).json();
  console.log(
    `  receiver event loop late by p50 ${loop.p50.toFixed(1)} ms, p99 ${loop.p99.toFixed(1)} ms, max ${loop.max.toFixed(1)} ms ` +
      `(5 ms sampling included; a stall here holds every subscription and is not the server's)`,
  );
  printStageSeconds(stage0, stageSamples, await stageTotals());
  if (STAGES_LOG) stages(slow, subOf, seqOf);
  // The generator's own polls of /count open connections too (fetch keeps them alive, so a
  // handful); a sender that did not keep its connections alive would show one per delivery.
  console.log(`  connections the receiver accepted during the run: ${conns} (for ${got} deliveries to ${subs} subscriptions)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
