#!/usr/bin/env python3
"""latency.py - commit-to-visible latency of sampled book inserts.

Inserts one book (with one book_author link) every 1/RATE s in its own
transaction, notes the time the COMMIT returned, and polls the search engine
until the document is there: a realtime _mget by _id every 20 ms ("get"),
and an ids search every 100 ms, which sees only refreshed segments
("search"). Stops inserting when STOP_FILE exists, then inserts one last
sample (the marker: the stream's last change) and polls until every sample
is visible or TIMEOUT seconds have passed since the stop. Writes OUT (JSON).

Runs with the bench venv's python (psycopg2 comes with PGSync).
"""
import argparse
import http.client
import json
import os
import threading
import time
import urllib.parse

import psycopg2

p = argparse.ArgumentParser()
p.add_argument("--dsn", required=True)
p.add_argument("--es", required=True)
p.add_argument("--index", required=True)
p.add_argument("--rate", type=float, required=True)
p.add_argument("--prefix", required=True, help="isbn prefix of the samples")
p.add_argument("--author-id", type=int, required=True,
               help="the samples' author: one the stream never renames, so that a"
               " sample becomes visible only through its own insert")
p.add_argument("--stop-file", required=True)
p.add_argument("--timeout", type=float, required=True)
p.add_argument("--out", required=True)
a = p.parse_args()

lock = threading.Lock()
samples = {}  # id -> {"commit": t, "get": t|None, "search": t|None}
order = []
done_inserting = threading.Event()


def inserter():
    conn = psycopg2.connect(a.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    n = 0
    nxt = time.time()
    last = False
    while True:
        if os.path.exists(a.stop_file):
            last = True  # the marker
        n += 1
        isbn = a.prefix + str(n).rjust(13 - len(a.prefix), "0")
        cur.execute(
            "WITH b AS (INSERT INTO book (isbn, title, description) VALUES (%s, %s, %s) "
            "RETURNING isbn) INSERT INTO book_author (book_isbn, author_id) "
            "SELECT isbn, %s FROM b",
            (isbn, "Latency sample " + isbn, "a sampled insert", a.author_id))
        t = time.time()
        with lock:
            samples[isbn] = {"commit": t, "get": None, "search": None, "marker": last}
            order.append(isbn)
        if last:
            break
        nxt += 1.0 / a.rate
        d = nxt - time.time()
        if d > 0:
            time.sleep(d)
        else:
            nxt = time.time()
    conn.close()
    done_inserting.set()


class ES:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.c = None

    def post(self, path, body):
        for attempt in range(3):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
                self.c.request("POST", path, body=json.dumps(body),
                               headers={"Content-Type": "application/json"})
                r = self.c.getresponse()
                data = r.read()
                if r.status == 404:
                    return None  # index not there yet
                return json.loads(data)
            except (OSError, http.client.HTTPException, ValueError):
                self.c = None
                time.sleep(0.05)
        return None


def poller():
    es = ES(a.es)
    next_search = 0.0
    stop_at = None
    while True:
        now = time.time()
        with lock:
            need_get = [i for i in order if samples[i]["get"] is None]
            need_search = [i for i in order if samples[i]["search"] is None]
        for k in range(0, len(need_get), 1000):
            chunk = need_get[k:k + 1000]
            r = es.post(f"/{a.index}/_mget?realtime=true&_source=false", {"ids": chunk})
            t = time.time()
            for d in (r or {}).get("docs", []):
                if d.get("found"):
                    with lock:
                        if samples[d["_id"]]["get"] is None:
                            samples[d["_id"]]["get"] = t
        if now >= next_search and need_search:
            next_search = now + 0.1
            for k in range(0, len(need_search), 1000):
                chunk = need_search[k:k + 1000]
                r = es.post(f"/{a.index}/_search?filter_path=hits.hits._id",
                            {"query": {"ids": {"values": chunk}}, "size": len(chunk),
                             "_source": False})
                t = time.time()
                for h in ((r or {}).get("hits") or {}).get("hits", []):
                    with lock:
                        if samples[h["_id"]]["search"] is None:
                            samples[h["_id"]]["search"] = t
        if done_inserting.is_set():
            if stop_at is None:
                stop_at = time.time()
            with lock:
                pending = [i for i in order if samples[i]["get"] is None
                           or samples[i]["search"] is None]
            if not pending or time.time() - stop_at > a.timeout:
                break
        # 20 ms between polls; slower when thousands wait (a tool far behind)
        time.sleep(0.02 if len(need_get) < 200 else 0.1)


t_start = time.time()
ti = threading.Thread(target=inserter)
tp = threading.Thread(target=poller)
ti.start()
tp.start()
ti.join()
t_stop = time.time()
tp.join()
t_end = time.time()
res = {"t_start": t_start, "t_stop": t_stop, "t_end": t_end, "samples": [samples[i] for i in order]}
with open(a.out, "w") as f:
    json.dump(res, f)
