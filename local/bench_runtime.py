#!/usr/bin/env python3
"""Binary size, cold start and peak memory of each function, under a fake Lambda Runtime API.

For each function and run: spawn the release binary, time until its first poll of /runtime/invocation/next
(cold start: exec, config, Cedar validation, clients, embedded tables), hand it its `events/<fn>/direct.json`
request with a freshly minted token, time the reply, then read the process's peak RSS (VmHWM) before stopping
it. Prints medians, and each binary's size against the 12 MB goal (the arm64 `bootstrap` from
`cargo lambda build --release --arm64` too, where one is in `target/lambda/`).

Needs the local stack's FHIR server and issuer (local/stack.sh up) and a release build
(cargo build --release -p patient-summary -p icd10-coding -p prior-auth-draft). Standard library only.
BENCH_RUNS (default 15) sets the runs per function; BENCH_FUNCTIONS (comma-separated) picks functions.
"""
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
RUNS = int(os.environ.get("BENCH_RUNS", "15"))
SIZE_GOAL = 12_000_000  # bytes
COLD_START_GOAL_MS = 10
# Per function: the demo user the call is made as (local/demo-users.json) and extra environment.
FUNCTIONS = {
    # Fletcher Hyatt, the largest shared bundle.
    "patient-summary": {"user": "dr-okafor", "env": {},
                        "arguments": {"patient_id": "c5ed5d78-5b3f-4a75-bdfb-5f318b068a20"}},
    "icd10-coding": {"user": "coder-lee", "env": {}},
    "prior-auth-draft": {
        "user": "dr-okafor",  # the patient's GP orders the service
        "env": {"DRAFT_STORE": "file", "PRIOR_AUTH_DRAFT_DIR": "/tmp/bench-prior-auth-drafts",
                "PAYER_POLICIES_DIR": os.path.join(os.path.dirname(REPO), "shared", "payer-policies")},
    },
}


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Serves exactly one invocation per process, then parks further polls."""

    state = {}

    def log_message(self, *args):
        pass

    def setup(self):
        # A connection belongs to the run that was current when it was accepted: a poll the previous process
        # sent just before it was stopped can be read after the next run has begun, and must not take that
        # run's invocation (it would be written to a dead socket).
        super().setup()
        self.run_state = RuntimeApi.state

    def do_GET(self):
        s = self.run_state
        if not self.path.endswith("/invocation/next"):
            self.send_error(404)
            return
        if s is not RuntimeApi.state:
            self.send_response(204)
            self.end_headers()
            return
        if s.get("first_poll") is None:
            s["first_poll"] = time.perf_counter()
            body = json.dumps(s["event"]).encode()
            s["sent"] = time.perf_counter()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-%d" % s["run"])
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int((time.time() + 30) * 1000)))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            s["polled_again"].set()
            s["parked"].wait(timeout=30)
            self.send_response(204)
            self.end_headers()

    def do_POST(self):
        s = self.run_state
        length = int(self.headers.get("Content-Length", "0"))
        s["reply"] = json.loads(self.rfile.read(length) or b"{}")
        s["replied"] = time.perf_counter()
        self.send_response(202)
        self.end_headers()
        s["done"].set()


def peak_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def size_line(label, path):
    if not os.path.exists(path):
        return None
    size = os.path.getsize(path)
    return "  %-7s %5.1f MB (%d bytes, %.1f MiB) %s  goal <= 12 MB" % (
        label, size / 1e6, size, size / 2**20, "ok" if size <= SIZE_GOAL else "OVER")


def bench(name, spec, server):
    binary = os.path.join(TARGET, "release", name)
    if not os.path.exists(binary):
        sys.exit("no release binary at %s: cargo build --release -p %s" % (binary, name))
    token = subprocess.run(["node", os.path.join(REPO, "local", "issuer.mjs"), "mint", spec["user"]],
                           check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(REPO, "events", name, "direct.json")) as f:
        event = json.load(f)
    event["identity_token"] = token
    event["arguments"].update(spec.get("arguments", {}))
    issuer = "http://127.0.0.1:%s" % os.environ.get("ISSUER_PORT", "8104")
    env = dict(os.environ,
               AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % server.server_address[1],
               AWS_LAMBDA_FUNCTION_NAME="%s-bench" % name,
               FHIR_BASE_URL="http://127.0.0.1:%s/fhir" % os.environ.get("FHIR_PORT", "8103"),
               FHIR_SIGNING="none",
               JWKS_URL=issuer + "/.well-known/jwks.json",
               JWT_ISSUER=issuer,
               JWT_AUDIENCE="clinical-agent-tools",
               RUST_LOG="warn",
               **spec["env"])
    cold, first_call, rss, outcome = [], [], [], "ok"
    for run in range(RUNS):
        RuntimeApi.state = {"run": run, "event": event, "first_poll": None,
                            "done": threading.Event(), "parked": threading.Event(),
                            "polled_again": threading.Event()}
        started = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not RuntimeApi.state["done"].wait(timeout=60):
            proc.kill()
            sys.exit("%s run %d: no reply from the function: %s" % (name, run, proc.stderr.read()[-600:]))
        s = RuntimeApi.state
        if s["reply"].get("ok") is not True:
            # Still a cold start and a full call path; say so rather than hide the figure.
            error = s["reply"].get("error") or {}
            outcome = "error %s (%s)" % (error.get("kind", "?"), error.get("message", ""))
        rss.append(peak_rss_kib(proc.pid))
        # The next poll must reach this run's state before the next run replaces it, or it would take the
        # next run's invocation to a process about to be stopped.
        s["polled_again"].wait(timeout=10)
        s["parked"].set()
        proc.terminate()
        proc.communicate(timeout=10)
        cold.append((s["first_poll"] - started) * 1000)
        first_call.append((s["replied"] - s["sent"]) * 1000)
    print("%s (%d runs)" % (name, RUNS))
    for line in (size_line("x86_64", binary),
                 size_line("arm64", os.path.join(TARGET, "lambda", name, "bootstrap"))):
        if line:
            print(line)
    print("  cold start to first poll: median %.1f ms (min %.1f, max %.1f)  goal <= %d ms"
          % (statistics.median(cold), min(cold), max(cold), COLD_START_GOAL_MS))
    print("  first invocation (events/%s/direct.json, incl. JWKS fetch): median %.1f ms, reply %s"
          % (name, statistics.median(first_call), outcome))
    print("  peak RSS after one call: median %.1f MiB (max %.1f)" % (statistics.median(rss) / 1024, max(rss) / 1024))


def main():
    wanted = [f for f in os.environ.get("BENCH_FUNCTIONS", ",".join(FUNCTIONS)).split(",") if f]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in wanted:
        bench(name, FUNCTIONS[name], server)
    server.shutdown()


if __name__ == "__main__":
    main()
