// Load generator for server.js (issue 13): N sockets in rooms of G, opened at a ramp, then
// an open-loop send rate for a fixed time; send → receive and send → ack latency.
//
//   node client.js --url http://127.0.0.1:18290 --rate 2000 --duration 10 --procs 2
//
// Options (env fallback): --url URL[,URL...] (URL), --sockets N (N, 2000), --group G
// (G, 50), --rate msg/s (RATE, 1000), --duration s (DURATION, 10), --ramp sockets/s (1000),
// --settle s (2), --drain s (3), --procs K (PROCS, 1), --server-pids PID[,PID] (CPU of the
// servers over the send window), --out FILE (the JSON result, also printed on stdout).
//
// Each room's members live in one process, so send and receive times come from the same
// clock. A send counts from when it was due (start + i / rate), not from when the event
// loop got to it: a client that falls behind shows it in its latencies and in the achieved
// send rate and send lag. The server broadcasts to the sender too: G deliveries a message.
'use strict';

const { fork } = require('node:child_process');
const fs = require('node:fs');
const { performance } = require('node:perf_hooks');
const hdr = require('hdr-histogram-js');

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms precision

function options(argv) {
  const env = process.env;
  const o = {
    url: env.URL || 'http://127.0.0.1:18290',
    sockets: Number(env.N || 2000),
    group: Number(env.G || 50),
    rate: Number(env.RATE || 1000),
    duration: Number(env.DURATION || 10),
    ramp: 1000,
    settle: 2,
    drain: 3,
    procs: Number(env.PROCS || 1),
    serverPids: '',
    out: '',
    connectTimeout: 30,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-(\w)/g, (_, c) => c.toUpperCase());
    if (!(key in o)) throw new Error(`unknown option ${argv[i]}`);
    o[key] = typeof o[key] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  o.urls = o.url.split(',').filter(Boolean);
  o.rooms = Math.floor(o.sockets / o.group);
  o.procs = Math.max(1, Math.min(o.procs, o.rooms));
  return o;
}

const histogram = () =>
  hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 2, autoResize: true,
    numberOfSignificantValueDigits: 3, useWebAssembly: false });
const recordMs = (h, ms) => h.recordValue(Math.max(1, Math.round(ms * 1000))); // in µs

function count(map, key) {
  map[key] = (map[key] || 0) + 1;
}

// One process's share: the rooms r with r % procs == index, sockets r*G .. r*G+G-1, the
// rate in proportion. `go(info)` reports readiness and resolves to the common start time.
async function worker(o, index, go) {
  const myRooms = [];
  for (let r = index; r < o.rooms; r += o.procs) myRooms.push(r);
  const rate = (o.rate * myRooms.length) / o.rooms;
  const { io } = require('socket.io-client');
  const h = { delivery: histogram(), ack: histogram(), lag: histogram() };
  const c = { connected: 0, joined: 0, sent: 0, notSent: 0, acked: 0, delivered: 0 };
  const connectFailures = {};
  const disconnects = {};
  let measuring = false;
  let closing = false;

  // Open the sockets at the ramp rate (this process's share of it), each joining its room.
  const members = myRooms.map(() => []);
  const plan = [];
  myRooms.forEach((r, k) => {
    for (let m = 0; m < o.group; m++) plan.push({ k, room: `room-${r}`, s: r * o.group + m });
  });
  const ramp = o.ramp / o.procs;
  const opening = now();
  let opened = 0;
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(plan.length, Math.ceil(((now() - opening) / 1000) * ramp));
      for (; opened < due; opened++) {
        const { k, room, s } = plan[opened];
        const sock = io(o.urls[s % o.urls.length], {
          transports: ['websocket'], forceNew: true, reconnection: false,
          timeout: o.connectTimeout * 1000,
        });
        sock.on('connect', () => {
          c.connected++;
          sock.emit('join', [room], () => c.joined++);
        });
        sock.on('connect_error', (e) => count(connectFailures, e.message));
        sock.on('disconnect', (reason) => closing || count(disconnects, reason));
        sock.on('message', (msg) => {
          c.delivered++;
          if (measuring) recordMs(h.delivery, now() - msg.ts);
        });
        members[k].push({ sock, room });
      }
      if (opened === plan.length) {
        clearInterval(timer);
        resolve();
      }
    }, 10);
  });
  const deadline = now() + o.connectTimeout * 1000;
  const failed = () => Object.values(connectFailures).reduce((a, b) => a + b, 0);
  while (c.joined + failed() < plan.length && now() < deadline) await sleep(50);
  const rampS = (now() - opening) / 1000;

  const start = await go({ sockets: plan.length, connected: c.connected, joined: c.joined, rampS });
  await sleep(start - now());
  const cpu0 = process.cpuUsage();

  // Open loop: send i is due at start + i / rate; whatever is due is sent at each tick,
  // room after room, and within a room member after member. Acks are not waited for.
  measuring = true;
  const total = Math.round(rate * o.duration);
  const turns = new Array(myRooms.length).fill(0);
  let i = 0;
  let next = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const t = now();
      const due = Math.min(total, Math.floor(((t - start) / 1000) * rate) + 1);
      for (; i < due; i++) {
        const dueAt = start + (i * 1000) / rate;
        const k = next;
        next = (next + 1) % myRooms.length;
        const { sock, room } = members[k][turns[k]++ % members[k].length];
        recordMs(h.lag, now() - dueAt);
        if (!sock.connected) {
          c.notSent++;
          continue;
        }
        sock.emit('send', { room, id: i, ts: dueAt }, () => {
          c.acked++;
          recordMs(h.ack, now() - dueAt);
        });
        c.sent++;
      }
      if (i < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  const sendS = Math.max(o.duration, (now() - start) / 1000);

  // Drain: up to o.drain s for the acks and deliveries still in flight.
  const drainUntil = now() + o.drain * 1000;
  while ((c.acked < c.sent || c.delivered < c.sent * o.group) && now() < drainUntil) await sleep(20);
  const cpu = process.cpuUsage(cpu0);
  closing = true;
  return {
    ...c, rooms: myRooms.length, rate, sendS, rampS, connectFailures, disconnects,
    cpuS: (cpu.user + cpu.system) / 1e6, pid: process.pid,
    hist: Object.fromEntries(Object.entries(h).map(([k, v]) => [k, hdr.encodeIntoCompressedBase64(v)])),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// utime + stime of a process in seconds, from /proc (Linux; clock ticks of 1/100 s).
function procCpu(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
}

// Runs the workers (in this process, or in K forked ones), starts them together, merges.
async function main() {
  const o = options(process.argv.slice(2));
  const serverPids = o.serverPids.split(',').filter(Boolean).map(Number);
  const log = (s) => process.stderr.write(`${s}\n`);
  log(`socket.io client: ${o.rooms * o.group} sockets, ${o.rooms} rooms of ${o.group}, ` +
    `${o.urls.join(', ')}, ${o.procs} proc(s), ${o.rate} msg/s for ${o.duration} s`);

  // Every worker reports ready; then all are told one start time a little ahead.
  let serverCpu0 = [];
  let t0 = 0;
  const readies = [];
  let release;
  const started = new Promise((r) => (release = r));
  const go = (info) => {
    readies.push(info);
    if (readies.length === o.procs) {
      const sum = (k) => readies.reduce((a, x) => a + x[k], 0);
      log(`  connected ${sum('connected')} of ${sum('sockets')}, joined ${sum('joined')}, ` +
        `in ${Math.max(...readies.map((x) => x.rampS)).toFixed(1)} s; settling ${o.settle} s`);
      t0 = now() + o.settle * 1000;
      setTimeout(() => (serverCpu0 = serverPids.map(procCpu)), o.settle * 1000);
      release(t0);
    }
    return started;
  };

  let parts;
  if (o.procs === 1) {
    parts = [await worker(o, 0, go)];
  } else {
    parts = await Promise.all(Array.from({ length: o.procs }, (_, index) => new Promise((resolve, reject) => {
      const child = fork(__filename, ['--child', String(index)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.send({ type: 'config', o });
      child.on('message', async (m) => {
        if (m.type === 'ready') child.send({ type: 'go', start: await go(m.info) });
        else if (m.type === 'result') resolve(m.result);
      });
      child.on('exit', (code) => code && reject(new Error(`client process ${index} exited with ${code}`)));
    })));
  }
  const windowS = (now() - t0) / 1000;
  const serverCpu = serverPids.map((pid, k) => {
    const s = procCpu(pid) - serverCpu0[k];
    return { pid, cpu_s: round(s, 2), core_pct: round((100 * s) / windowS, 1) };
  });

  // Merge the processes' counters and histograms.
  const sum = (k) => parts.reduce((a, p) => a + p[k], 0);
  const merged = (k) => {
    const h = histogram();
    for (const p of parts) h.add(hdr.decodeFromCompressedBase64(p.hist[k], 32, false));
    return h;
  };
  const addCounts = (k) => parts.reduce((acc, p) => {
    for (const [r, n] of Object.entries(p[k])) acc[r] = (acc[r] || 0) + n;
    return acc;
  }, {});
  const ms = (h, q) => round(h.getValueAtPercentile(q) / 1000, 2);
  const latency = (h) => ({ count: h.totalCount, p50_ms: ms(h, 50), p90_ms: ms(h, 90),
    p99_ms: ms(h, 99), max_ms: round(h.maxValue / 1000, 2) });
  const sendS = Math.max(...parts.map((p) => p.sendS));
  const sent = sum('sent');
  const delivery = merged('delivery');
  const result = {
    scenario: 'socketio-chat',
    socketio: require('socket.io-client/package.json').version,
    urls: o.urls,
    sockets: sum('rooms') * o.group,
    rooms: sum('rooms'),
    group: o.group,
    procs: o.procs,
    connected: sum('connected'),
    joined: sum('joined'),
    connect_failures: addCounts('connectFailures'),
    disconnects: addCounts('disconnects'),
    offered_rate_per_s: o.rate,
    duration_s: round(sendS, 3),
    sent,
    not_sent: sum('notSent'),
    achieved_send_rate_per_s: round(sent / sendS, 1),
    acked: sum('acked'),
    unacked: sent - sum('acked'),
    deliveries_per_message: o.group, // the sender included
    expected_deliveries: sent * o.group,
    delivered: sum('delivered'),
    deliveries_per_s: round(sum('delivered') / sendS, 1),
    delivery: latency(delivery),
    ack: latency(merged('ack')),
    send_lag: latency(merged('lag')),
    cpu: {
      window_s: round(windowS, 2), // the send and drain, where the load is
      server: serverCpu,
      client: parts.map((p) => ({ pid: p.pid, cpu_s: round(p.cpuS, 2), core_pct: round((100 * p.cpuS) / windowS, 1) })),
    },
  };
  const line = JSON.stringify(result);
  if (o.out) fs.writeFileSync(o.out, `${line}\n`);
  process.stdout.write(`${line}\n`);

  const r = result;
  const cpuList = (l) => l.map((x) => `${x.core_pct}%`).join(' + ');
  log(`  offered ${r.offered_rate_per_s} msg/s: sent ${r.sent} in ${r.duration_s} s ` +
    `(achieved ${r.achieved_send_rate_per_s}/s, send lag p99 ${r.send_lag.p99_ms} ms), ` +
    `acked ${r.acked}, unacked ${r.unacked}, not sent ${r.not_sent}`);
  log(`  deliveries ${r.delivered} of ${r.expected_deliveries} (${r.deliveries_per_s}/s); delivery ` +
    `p50 ${r.delivery.p50_ms} p90 ${r.delivery.p90_ms} p99 ${r.delivery.p99_ms} max ${r.delivery.max_ms} ms; ` +
    `ack p50 ${r.ack.p50_ms} p99 ${r.ack.p99_ms} ms`);
  log(`  cpu over ${r.cpu.window_s} s, % of one core: server ${cpuList(r.cpu.server) || 'n/a'}, ` +
    `client ${cpuList(r.cpu.client)}`);
  if (Object.keys(r.connect_failures).length || Object.keys(r.disconnects).length) {
    log(`  connect failures ${JSON.stringify(r.connect_failures)}, disconnects ${JSON.stringify(r.disconnects)}`);
  }
  process.exit(0); // the sockets are not closed one by one
}

function round(x, d) {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

// A forked client process: config in, ready out, go in, result out.
function child(index) {
  let goResolve;
  process.on('disconnect', () => process.exit(1)); // the parent is gone
  process.on('message', async (m) => {
    if (m.type === 'config') {
      const result = await worker(m.o, index, (info) => {
        process.send({ type: 'ready', info });
        return new Promise((r) => (goResolve = r));
      });
      process.send({ type: 'result', result }, () => process.exit(0));
    } else if (m.type === 'go') {
      goResolve(m.start);
    }
  });
}

if (process.argv[2] === '--child') child(Number(process.argv[3]));
else main().catch((e) => {
  console.error(e);
  process.exit(1);
});
