// Socket.IO 4 chat server for the side-by-side benchmark (issue 13): rooms are
// conversations, no persistence, no auth, websocket transport only.
//
//   PORT=18290 node server.js                                   # one instance
//   PORT=18290 REDIS_URL=redis://127.0.0.1:6379 node server.js  # several, sharing rooms
//
// Events: `join` [room, ...] (ack), `send` {room, id, ts} (ack). A send is broadcast as
// `message` {room, id, ts, from} to the whole room, the sender included, like TuneLink's
// `message.created`, so one message to a room of G makes G deliveries.
'use strict';

const http = require('node:http');
const { Server } = require('socket.io');

const port = Number(process.env.PORT || 18290);
const host = process.env.HOST || '127.0.0.1';

// A plain HTTP answer outside /socket.io/ so that scripts can wait for readiness.
const httpServer = http.createServer((req, res) => {
  res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'text/plain' });
  res.end(req.url === '/healthz' ? 'ok\n' : 'not found\n');
});

const io = new Server(httpServer, {
  transports: ['websocket'], // no long-polling handshake or upgrade
  serveClient: false,
  perMessageDeflate: false, // the default, stated: compression would cost CPU on both sides
  httpCompression: false,
});

io.on('connection', (socket) => {
  socket.on('join', (rooms, ack) => {
    if (Array.isArray(rooms)) socket.join(rooms.map(String));
    if (typeof ack === 'function') ack({ ok: true });
  });
  socket.on('send', (msg, ack) => {
    if (msg && typeof msg.room === 'string') {
      io.to(msg.room).emit('message', { room: msg.room, id: msg.id, ts: msg.ts, from: socket.id });
    }
    if (typeof ack === 'function') ack({ id: msg && msg.id });
  });
});

async function main() {
  if (process.env.REDIS_URL) {
    // Loaded only here so that one instance needs no Redis at all.
    const { createClient } = require('redis');
    const { createAdapter } = require('@socket.io/redis-adapter');
    const pub = createClient({ url: process.env.REDIS_URL });
    const sub = pub.duplicate();
    for (const c of [pub, sub]) c.on('error', (e) => console.error('redis:', e.message));
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  httpServer.listen(port, host, () => {
    const adapter = process.env.REDIS_URL ? `redis adapter (${process.env.REDIS_URL})` : 'in-memory adapter';
    console.log(`socket.io ${require('socket.io/package.json').version} on ${host}:${port}, ${adapter}, pid ${process.pid}`);
  });
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
