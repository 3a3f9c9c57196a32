#!/usr/bin/env python3
"""Baseline for the summary's FHIR fan-out: a plain httpx + asyncio.gather client issuing the same searches.

Usage: bench_fhir_fanout.py QUERIES_JSON [ITERATIONS]. QUERIES_JSON (written by
`cargo bench -p patient-summary --bench summary_wall`) holds {"base": ".../fhir/", "session_id": ...,
"queries": [{"type", "form", "max_pages"}]}. Each iteration sends every search at once, as the tool does
(POST [type]/_search with the form body and Prefer: handling=strict, then GET on each `next` link with its
query re-encoded the same way), parses every page as JSON, and waits for all of them. Prints one line of
JSON: {"median_ms": ..., "resources": ...}. Needs httpx (pinned in local/stack.sh install).
"""
import asyncio
import json
import statistics
import sys
import time
import urllib.parse

import httpx


def canonical(url):
    """Percent-encodes every name and value with only unreserved characters bare (what the Rust client sends)."""
    head, _, query = url.partition("?")
    if not query:
        return url
    pairs = []
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        enc = lambda s: urllib.parse.quote(urllib.parse.unquote(s), safe="-_.~")
        pairs.append(f"{enc(name)}={enc(value)}")
    return head + "?" + "&".join(pairs)


async def search(client, base, headers, q):
    response = await client.post(
        f"{base}{q['type']}/_search",
        content=q["form"],
        headers={**headers, "content-type": "application/x-www-form-urlencoded"},
    )
    response.raise_for_status()
    count, pages = 0, 1
    while True:
        page = json.loads(response.content)
        count += len(page.get("entry", []))
        nxt = next((l["url"] for l in page.get("link", []) if l.get("relation") == "next"), None)
        if not nxt or pages >= q["max_pages"]:
            return count
        response = await client.get(canonical(nxt), headers=headers)
        response.raise_for_status()
        pages += 1


async def main():
    spec = json.load(open(sys.argv[1]))
    iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    headers = {"accept": "application/fhir+json", "prefer": "handling=strict", "x-session-id": spec["session_id"]}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        run = lambda: asyncio.gather(*(search(client, spec["base"], headers, q) for q in spec["queries"]))
        counts = await run()  # warm: connections open, server caches filled
        samples = []
        for _ in range(iterations):
            started = time.perf_counter()
            await run()
            samples.append((time.perf_counter() - started) * 1000)
    print(json.dumps({"median_ms": statistics.median(samples), "resources": sum(counts)}))


asyncio.run(main())
