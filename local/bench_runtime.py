#!/usr/bin/env python3
"""Cold start and peak memory of the patient-summary binary, under a fake Lambda Runtime API.

For each run: spawn the release binary, time until its first poll of /runtime/invocation/next (cold
start: exec, config, Cedar validation, clients), hand it one summary request for the largest shared
patient, time the reply, then read the process's peak RSS (VmHWM) before stopping it.

Needs the local stack's FHIR server and issuer (local/stack.sh up) and a release build
(cargo build --release -p patient-summary). Prints medians; standard library only.
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
BINARY = os.path.join(REPO, "target", "release", "patient-summary")
PATIENT = "c5ed5d78-5b3f-4a75-bdfb-5f318b068a20"  # Fletcher Hyatt, the largest shared bundle
RUNS = int(os.environ.get("BENCH_RUNS", "15"))


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    """Serves exactly one invocation per process, then parks further polls."""

    state = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        s = RuntimeApi.state
        if not self.path.endswith("/invocation/next"):
            self.send_error(404)
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
            s["parked"].wait(timeout=30)
            self.send_response(204)
            self.end_headers()

    def do_POST(self):
        s = RuntimeApi.state
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


def main():
    if not os.path.exists(BINARY):
        sys.exit("no release binary at %s: cargo build --release -p patient-summary" % BINARY)
    token = subprocess.run(["node", os.path.join(REPO, "local", "issuer.mjs"), "mint", "dr-okafor"],
                           check=True, capture_output=True, text=True).stdout.strip()
    event = {"tool": "patient_summary", "session_id": "bench-session-cold-start", "identity_token": token,
             "arguments": {"patient_id": PATIENT}}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ,
               AWS_LAMBDA_RUNTIME_API="127.0.0.1:%d" % server.server_address[1],
               AWS_LAMBDA_FUNCTION_NAME="patient-summary-bench",
               FHIR_BASE_URL="http://127.0.0.1:%s/fhir" % os.environ.get("FHIR_PORT", "8103"),
               FHIR_SIGNING="none",
               JWKS_URL="http://127.0.0.1:%s/.well-known/jwks.json" % os.environ.get("ISSUER_PORT", "8104"),
               JWT_ISSUER="http://127.0.0.1:%s" % os.environ.get("ISSUER_PORT", "8104"),
               JWT_AUDIENCE="clinical-agent-tools",
               RUST_LOG="warn")
    cold, first_call, rss = [], [], []
    for run in range(RUNS):
        RuntimeApi.state = {"run": run, "event": event, "first_poll": None,
                            "done": threading.Event(), "parked": threading.Event()}
        started = time.perf_counter()
        proc = subprocess.Popen([BINARY], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not RuntimeApi.state["done"].wait(timeout=60):
            proc.kill()
            sys.exit("run %d: no reply from the function" % run)
        s = RuntimeApi.state
        if s["reply"].get("ok") is not True:
            proc.kill()
            sys.exit("run %d: the summary failed: %s" % (run, json.dumps(s["reply"])[:300]))
        rss.append(peak_rss_kib(proc.pid))
        s["parked"].set()
        proc.terminate()
        proc.wait(timeout=10)
        cold.append((s["first_poll"] - started) * 1000)
        first_call.append((s["replied"] - s["sent"]) * 1000)
    server.shutdown()
    print("runs: %d (binary %s, %.1f MiB)" % (RUNS, os.path.relpath(BINARY, REPO), os.path.getsize(BINARY) / 2**20))
    print("cold start to first poll: median %.1f ms (min %.1f, max %.1f)  goal <= 16 ms"
          % (statistics.median(cold), min(cold), max(cold)))
    print("first invocation (largest patient, incl. JWKS fetch): median %.1f ms" % statistics.median(first_call))
    print("peak RSS after one summary: median %.1f MiB (max %.1f)  goal <= 24 MiB"
          % (statistics.median(rss) / 1024, max(rss) / 1024))


if __name__ == "__main__":
    main()
