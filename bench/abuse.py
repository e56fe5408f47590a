#!/usr/bin/env python3
"""Abuse benchmark (issue 15): attacks from one address while a normal client works.

The attacker connects from 127.0.0.1, the normal client from 127.0.0.2 (both reach the
server on loopback, as two addresses of the internet would). Each phase runs one attack for
--phase seconds while the normal client, every second, searches musicians and events, sends a
message and reads the history (after logging in at the start of the phase). Prints, per
phase, what the attack achieved and the normal client's latency (p50, p99, max) and
failures, as JSON lines and a Markdown table.

Phases: idle (19,000 TCP connections opened and held), sockets (5,000 WebSocket upgrades
without a token), slow (500 connections sending their headers one byte per second),
search (40 concurrent 500 km musician searches sorted by distance, one account).

Standard library only. Needs `ulimit -n` above 20,000 for this process.
"""
import argparse
import asyncio
import json
import os
import statistics
import time

ATTACKER = "127.0.0.1"
CLIENT = "127.0.0.2"


async def http(host, port, method, path, body=None, token=None, source=CLIENT, timeout=10):
    """One request on a fresh connection; (status, json body, seconds)."""
    start = time.perf_counter()
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, local_addr=(source, 0)), timeout)
    try:
        data = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
                f"Content-Length: {len(data)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    elapsed = time.perf_counter() - start
    header, _, payload = raw.partition(b"\r\n\r\n")
    status = int(header.split(b" ", 2)[1]) if header else 0
    if b"transfer-encoding: chunked" in header.lower():
        payload = dechunk(payload)
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = None
    return status, parsed, elapsed


def dechunk(payload):
    out = b""
    while payload:
        size, _, rest = payload.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        out += rest[:n]
        payload = rest[n + 2:]
    return out


async def register(host, port, name, source=CLIENT):
    status, body, _ = await http(host, port, "POST", "/api/v1/auth/register", {
        "username": name, "email": f"{name}@example.com", "password": f"password-of-{name}"},
        source=source)
    assert status == 201, (status, body)
    return body["data"]["user"]["id"], body["data"]["access_token"]


async def normal_client(host, port, name, conv, stop, results):
    """Logs in, then every second: a musician search, an event search, a send, a read."""
    try:
        status, body, t = await http(host, port, "POST", "/api/v1/auth/login",
                                     {"login": name, "password": f"password-of-{name}"})
        results.append(("login", status, t))
        token = body["data"]["access_token"] if status == 200 else None
    except Exception as e:  # noqa: BLE001 - a failure is a result
        results.append(("login", f"error: {e!r}", 0.0))
        token = None
    i = 0
    while not stop.is_set():
        i += 1
        steps = [
            ("search", "GET", "/api/v1/users?q=mus", None),
            ("events", "GET", "/api/v1/events?lat=48.85&lon=2.35&radius_km=25", None),
            ("send", "POST", f"/api/v1/conversations/{conv}/messages",
             {"body": f"still here {i}", "client_msg_id": f"{name}-{os.getpid()}-{time.time()}"}),
            ("history", "GET", f"/api/v1/conversations/{conv}/messages?limit=20", None),
        ]
        for label, method, path, body in steps:
            try:
                status, _, t = await http(host, port, method, path, body, token)
                results.append((label, status, t))
            except Exception as e:  # noqa: BLE001
                results.append((label, f"error: {e!r}", 0.0))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except asyncio.TimeoutError:
            pass


async def attack_idle(host, port, stop, n=19000):
    held, refused = [], 0
    for _ in range(n):
        if stop.is_set():
            break
        try:
            held.append(await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(ATTACKER, 0)), 2))
        except Exception:  # noqa: BLE001
            refused += 1

    async def still_open(reader):
        try:
            return await asyncio.wait_for(reader.read(1), 0.5) != b""
        except asyncio.TimeoutError:
            return True
        except Exception:  # noqa: BLE001
            return False
    # How many the server still holds open for us (closed ones read EOF at once).
    alive = sum(await asyncio.gather(*(still_open(r) for r, _ in held)))
    await stop.wait()
    for _, w in held:
        w.close()
    return {"opened": len(held), "refused_at_connect": refused, "held_open_by_server": alive}


async def attack_sockets(host, port, stop, n=5000):
    upgraded, refused_429, other = 0, 0, 0
    held = []
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    for _ in range(n):
        if stop.is_set():
            break
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(ATTACKER, 0)), 2)
            w.write((f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            line = await asyncio.wait_for(r.readline(), 2)
            if b" 101 " in line:
                upgraded += 1
                held.append(w)
            elif b" 429 " in line:
                refused_429 += 1
                w.close()
            else:
                other += 1
                w.close()
        except Exception:  # noqa: BLE001
            other += 1
    await stop.wait()
    for w in held:
        w.close()
    return {"upgrades_tried": upgraded + refused_429 + other, "upgraded": upgraded,
            "refused_429": refused_429, "refused_otherwise": other}


async def attack_slow(host, port, stop, n=500):
    async def one():
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=(ATTACKER, 0)), 2)
        except Exception:  # noqa: BLE001
            return "refused"
        request = b"GET /api/v1/instruments HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        started = time.perf_counter()
        try:
            for byte in request:
                if stop.is_set():
                    return "held to the end"
                w.write(bytes([byte]))
                await w.drain()
                await asyncio.sleep(1)
                if r.at_eof():
                    break
        except Exception:  # noqa: BLE001
            pass
        finally:
            w.close()
        return f"cut after {time.perf_counter() - started:.0f} s"
    outcomes = await asyncio.gather(*(one() for _ in range(n)))
    summary = {}
    for o in outcomes:
        key = "refused" if o == "refused" else ("held" if o.startswith("held") else "cut")
        summary[key] = summary.get(key, 0) + 1
    return summary


async def attack_search(host, port, stop, token, n=40):
    counts = {}

    async def loop():
        while not stop.is_set():
            try:
                status, _, _ = await http(
                    host, port, "GET",
                    "/api/v1/users?lat=46.5&lon=2.5&radius_km=500&limit=100", token=token,
                    source=ATTACKER)
            except Exception:  # noqa: BLE001
                status = "error"
            counts[status] = counts.get(status, 0) + 1
    await asyncio.gather(*(loop() for _ in range(n)))
    return {str(k): v for k, v in sorted(counts.items(), key=lambda kv: str(kv[0]))}


def summarize(phase, attack, results):
    times = sorted(t for _, s, t in results if s in (200, 201))
    failures = [(label, s) for label, s, _ in results if s not in (200, 201)]
    q = statistics.quantiles(times, n=100, method="inclusive") if len(times) >= 2 else [0.0] * 99
    return {
        "phase": phase,
        "attack": attack,
        "client_requests": len(results),
        "client_failures": len(failures),
        "failure_examples": failures[:5],
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(max(times) * 1000, 1) if times else None,
    }


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--phase", type=float, default=20)
    ap.add_argument("--phases", default="idle,sockets,slow,search")
    args = ap.parse_args()
    host, port = args.host, args.port
    tag = str(int(time.time()))[-6:]
    nina, miles, flood = f"nina{tag}", f"miles{tag}", f"flood{tag}"
    _, nina_token = await register(host, port, nina)
    miles_id, _ = await register(host, port, miles)
    _, flood_token = await register(host, port, flood, source=ATTACKER)
    status, body, _ = await http(host, port, "POST", "/api/v1/conversations",
                                 {"participant_ids": [miles_id]}, nina_token)
    assert status == 201, (status, body)
    conv = body["data"]["id"]

    rows = []
    for phase in ["baseline"] + args.phases.split(","):
        stop = asyncio.Event()
        results = []
        attacks = {
            "baseline": lambda: asyncio.sleep(0, result={}),
            "idle": lambda: attack_idle(host, port, stop),
            "sockets": lambda: attack_sockets(host, port, stop),
            "slow": lambda: attack_slow(host, port, stop),
            "search": lambda: attack_search(host, port, stop, flood_token),
        }
        attack = asyncio.ensure_future(attacks[phase]())
        await asyncio.sleep(1)  # the attack under way first
        client = asyncio.ensure_future(normal_client(host, port, nina, conv, stop, results))
        await asyncio.sleep(args.phase)
        stop.set()
        await client
        outcome = await attack
        row = summarize(phase, outcome, results)
        print(json.dumps(row), flush=True)
        rows.append(row)
        await asyncio.sleep(2)  # let the server close what the attack left

    print()
    print("| phase | attack outcome | client requests | failures | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        outcome = ", ".join(f"{k}: {v}" for k, v in r["attack"].items()) or "none"
        print(f"| {r['phase']} | {outcome} | {r['client_requests']} | {r['client_failures']} "
              f"| {r['p50_ms']} | {r['p99_ms']} | {r['max_ms']} |")


if __name__ == "__main__":
    asyncio.run(main())
