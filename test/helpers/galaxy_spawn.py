#!/usr/bin/env python3
"""Starts, feeds and stops the proxy the way Galaxy does.

Galaxy (lib/galaxy/web/proxy/__init__.py, lib/galaxy/util/lazy_process.py):
  - spawns <galaxy>/lib/galaxy/web/proxy/js/lib/main.js with an argv list, no
    shell, close_fds=True, stdout and stderr inherited, from its own working
    directory, with --sessions --ip --port --reverseProxy [--verbose];
  - then, for each interactive environment, takes <map>.lock (created
    exclusively), connects with the sqlite3 module, tries CREATE TABLE and
    ignores the error, runs DELETE and INSERT for the session key, commits;
  - on shutdown: terminate() (SIGTERM), sleep 10 ms, kill() (SIGKILL) if it
    is still running.

Run from the Galaxy root. Events are JSON lines on stdout with an "event"
key (the proxy's own log lines share the stream, as they do under Galaxy).
After "routed" it waits for a line on stdin before shutting down, so the
test can check routing itself in between.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request


def emit(event, **fields):
    sys.stdout.write(json.dumps(dict(event=event, **fields)) + "\n")
    sys.stdout.flush()


class MapLock:
    """Galaxy's FileLock: <map>.lock created exclusively, removed on release."""

    def __init__(self, path, timeout=5.0):
        self.path = path + ".lock"
        self.timeout = timeout

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR))
                return self
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def __exit__(self, *exc):
        os.unlink(self.path)


def add_session(session_map, key, host, port, container_ids):
    """What Galaxy's SqliteProxyIpc.handle_requests does for one environment."""
    with MapLock(session_map):
        conn = sqlite3.connect(session_map)
        try:
            c = conn.cursor()
            try:
                c.execute(
                    """CREATE TABLE gxproxy2
                       (key text PRIMARY KEY, host text, port integer,
                        container_ids text, container_interface text)"""
                )
            except Exception:
                pass
            c.execute("DELETE FROM gxproxy2 WHERE key=?", (key,))
            c.execute(
                "INSERT INTO gxproxy2 (key, host, port, container_ids, container_interface) VALUES (?, ?, ?, ?, ?)",
                (key, host, port, json.dumps(container_ids), None),
            )
            conn.commit()
        finally:
            conn.close()


def poll_until_routed(ip, port, key, timeout):
    """Like Galaxy's page: ask the proxy with the session cookie until the container answers."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        request = urllib.request.Request(
            "http://%s:%d/galaxy/gie_proxy/jupyter/ipython/tree" % (ip, port),
            headers={"Cookie": "galaxysession=%s" % key},
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return response.status, response.read().decode("utf-8"), attempts
        except (urllib.error.URLError, ConnectionError) as err:
            if time.monotonic() > deadline:
                raise RuntimeError("proxy never routed: %r" % (err,))
            time.sleep(0.05)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy-js", required=True, help="<galaxy>/lib/galaxy/web/proxy/js")
    parser.add_argument("--session-map", default="database/session_map.sqlite")
    parser.add_argument("--ip", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--container-port", type=int, required=True)
    parser.add_argument("--debug", action="store_true", help="dynamic_proxy_debug: adds --verbose")
    args = parser.parse_args()

    # NodeProxyLauncher.launch_proxy_command
    command = [
        os.path.join(args.proxy_js, "lib", "main.js"),
        "--sessions", args.session_map,
        "--ip", args.ip,
        "--port", str(args.port),
        "--reverseProxy",
    ]
    if args.debug:
        command.append("--verbose")
    # LazyProcess.__start
    started = time.monotonic()
    process = subprocess.Popen(command, close_fds=True)
    emit("spawned", pid=process.pid, argv=command)

    # The first interactive environment: Galaxy writes the map a moment after the spawn.
    add_session(args.session_map, args.key, "127.0.0.1", args.container_port, ["c0ffee"])
    emit("map-written", path=os.path.abspath(args.session_map))

    status, body, attempts = poll_until_routed(args.ip, args.port, args.key, timeout=20)
    emit("routed", status=status, body=body, attempts=attempts, ms=round((time.monotonic() - started) * 1000))

    sys.stdin.readline()

    # LazyProcess.shutdown
    stopping = time.monotonic()
    process.terminate()
    time.sleep(0.01)
    killed = False
    if process.poll() is None:
        process.kill()
        killed = True
    returncode = process.wait(timeout=10)
    emit(
        "stopped",
        returncode=returncode,
        sigkill_sent=killed,
        ms=round((time.monotonic() - stopping) * 1000, 1),
    )


if __name__ == "__main__":
    main()
