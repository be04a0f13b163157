#!/usr/bin/env bash
# Checks every file under deploy/ mechanically, with the tools this machine
# has, and against the real hl-worker binary:
#
#   systemd unit    systemd-analyze verify (installed with apt when missing
#                   and running as root); a parse check if it cannot run
#   kubernetes      YAML parse, the manifests' cross-references, and
#                   `kubectl kustomize` when kubectl is here
#   grafana         JSON parse; every metric is one WorkerMetrics defines,
#                   every table one of the hl views
#   Dockerfile      stages, non-root user, what the runtime image installs
#   command lines   the unit's ExecStart, the Deployment's args, the image's
#                   CMD and the migrate Job's commands parse with the binary
#   memory          the unit's MemoryMax and the Deployment's memory limit
#                   hold the worst case of their command lines: the binary
#                   checks it (`serve --check-config`) against each limit
#   live            with PostgreSQL (DATABASE_URL, else the private cluster
#                   of scripts/pg.sh) and usable /dev/kvm: the dashboard's SQL
#                   runs as a member of hl_dashboard, and a worker started
#                   from the unit's ExecStart as a member of hl_worker turns
#                   healthy on /healthz, serves /metrics, and drains on
#                   SIGTERM within the unit's TimeoutStopSec
#
# Usage: deploy/check.sh            (HL_WORKER_BIN=path overrides .build/debug/hl-worker)
# Exits non-zero if any check fails; checks that cannot run here say "skip".
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="${HL_WORKER_BIN:-$root/.build/debug/hl-worker}"
unit=deploy/systemd/hl-worker.service
failures=0

pass() { echo "ok    $*"; }
skip() { echo "skip  $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }

work="$(mktemp -d)"
worker_pid=""
cleanup() {
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then kill -KILL "$worker_pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$bin" ]; then
    echo "deploy/check.sh: no hl-worker binary at $bin (run swift build, or set HL_WORKER_BIN)" >&2
    exit 1
fi

# MARK: Static checks of every file, and their command lines against the binary

# Prints ok/FAIL lines; writes the unit's ExecStart argv (JSON) and
# TimeoutStopSec, and the dashboard's SQL, for the live checks below.
static_checks() {
    python3 - "$bin" "$unit" "$work" <<'PY'
import json, os, re, shlex, subprocess, sys

import yaml

binary, unit_path, work = sys.argv[1:4]
failures = 0

def ok(message):
    print(f"ok    {message}")

def fail(message):
    global failures
    failures += 1
    print(f"FAIL  {message}")

def check(condition, message, detail=""):
    if condition:
        ok(message)
    else:
        fail(message + (f": {detail}" if detail else ""))

# The options each subcommand accepts, from its --help.
help_cache = {}
def options_of(subcommand):
    if subcommand not in help_cache:
        run = subprocess.run([binary, *subcommand.split(), "--help"], capture_output=True, text=True)
        help_cache[subcommand] = (set(re.findall(r"(--[a-z0-9][a-z0-9-]*)", run.stdout))
                                  if run.returncode == 0 else None)
    return help_cache[subcommand]

def check_command_line(argv, where):
    """argv: the arguments after the binary."""
    if not argv:
        return fail(f"{where}: no subcommand")
    subcommand = argv[0]
    known = options_of(subcommand)
    if known is None:
        return fail(f"{where}: `hl-worker {subcommand} --help` fails: no such subcommand")
    unknown = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--") and a.split("=", 1)[0] not in known]
    check(not unknown, f"{where}: `hl-worker {' '.join(argv)}` uses only options the binary accepts",
          "unknown " + ", ".join(unknown))

def option(argv, name, default=None):
    for index, arg in enumerate(argv):
        if arg == name and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default

def seconds(text):
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|sec|min|m)?\s*", text)
    if not match:
        return None
    value = float(match.group(1))
    return value * 60 if match.group(2) in ("min", "m") else value

DEFAULT_GRACE = 25.0

def memory_bytes(text, units):
    """A memory size with one of `units` (suffix: bytes per unit) or none."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text or ""))
    if not match or match.group(2) not in units:
        return None
    return int(float(match.group(1)) * units[match.group(2)])

KIB = 1024
SYSTEMD_UNITS = {"": 1, "K": KIB, "M": KIB**2, "G": KIB**3, "T": KIB**4}
K8S_UNITS = {"": 1, "Ki": KIB, "Mi": KIB**2, "Gi": KIB**3, "Ti": KIB**4,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}

def check_memory_limit(argv, limit, where):
    """The worker, given `limit` as its cgroup's memory.max, accepts argv's
    worst-case memory (it refuses to start otherwise)."""
    if limit is None:
        return fail(f"{where}: sets a memory limit (the worker sizes itself against it)")
    cgroup = os.path.join(work, "cgroup")
    os.makedirs(cgroup, exist_ok=True)
    with open(os.path.join(cgroup, "memory.max"), "w") as out:
        out.write(f"{limit}\n")
    run = subprocess.run([binary, *argv, "--check-config"], capture_output=True, text=True,
                         env={**os.environ, "HL_CGROUP_ROOT": cgroup})
    check(run.returncode == 0, f"{where}: worst-case memory fits the memory limit of {limit >> 20} MiB",
          (run.stdout + run.stderr).strip())

# --- systemd unit: structure and policy (systemd-analyze runs separately) ---
sections, current = {}, None
for number, raw in enumerate(open(unit_path), 1):
    line = raw.strip()
    if not line or line.startswith(("#", ";")):
        continue
    if line.startswith("[") and line.endswith("]"):
        current = sections.setdefault(line[1:-1], {})
        continue
    if current is None or "=" not in line:
        fail(f"{unit_path}:{number}: not a section header or key=value")
        continue
    key, value = (part.strip() for part in line.split("=", 1))
    current.setdefault(key, []).append(value)
service = sections.get("Service", {})
check({"Unit", "Service", "Install"} <= sections.keys(), f"{unit_path}: has [Unit], [Service], [Install]")

def last(key):
    return service.get(key, [None])[-1]

exec_start = shlex.split(last("ExecStart") or "")
unit_args = exec_start[1:]
check(exec_start[:1] == ["/usr/bin/hl-worker"], f"{unit_path}: ExecStart runs /usr/bin/hl-worker", str(exec_start[:1]))
check_command_line(unit_args, f"{unit_path} ExecStart")
check(last("User") not in (None, "root", "0"), f"{unit_path}: runs as an unprivileged User")
check("kvm" in " ".join(service.get("SupplementaryGroups", [])).split(), f"{unit_path}: SupplementaryGroups has kvm")
check("/dev/kvm rw" in service.get("DeviceAllow", []), f"{unit_path}: DeviceAllow=/dev/kvm rw")
check(last("PrivateDevices") not in ("yes", "true", "1"), f"{unit_path}: PrivateDevices is off (it would hide /dev/kvm)")
check(last("EnvironmentFile") is not None, f"{unit_path}: EnvironmentFile for DATABASE_URL")
check(last("Restart") == "on-failure", f"{unit_path}: Restart=on-failure")
check(last("KillSignal") in ("SIGTERM", "TERM", "15"), f"{unit_path}: KillSignal=SIGTERM")
grace = float(option(unit_args, "--shutdown-grace", DEFAULT_GRACE))
stop = seconds(last("TimeoutStopSec") or "")
check(stop is not None and stop > grace, f"{unit_path}: TimeoutStopSec ({stop}) exceeds the drain grace ({grace})")
check(option(unit_args, "--metrics-port") is not None, f"{unit_path}: ExecStart serves metrics (--metrics-port)")
check_memory_limit(unit_args, memory_bytes(last("MemoryMax"), SYSTEMD_UNITS), f"{unit_path}: MemoryMax")
with open(os.path.join(work, "unit.json"), "w") as out:
    json.dump({"args": unit_args, "stop": stop, "grace": grace}, out)

# --- Kubernetes manifests ---
k8s = "deploy/kubernetes"
documents = []
for name in sorted(os.listdir(k8s)):
    if not name.endswith((".yaml", ".yml")):
        continue
    path = os.path.join(k8s, name)
    try:
        loaded = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    except yaml.YAMLError as error:
        fail(f"{path}: YAML does not parse: {error}")
        continue
    check(all(isinstance(d, dict) and "kind" in d and "apiVersion" in d for d in loaded),
          f"{path}: parses; every document has apiVersion and kind")
    documents += [(path, d) for d in loaded]

def of_kind(kind):
    return [(p, d) for p, d in documents if d.get("kind") == kind]

secrets = {d["metadata"]["name"]: set((d.get("stringData") or {}) | (d.get("data") or {}))
           for _, d in of_kind("Secret")}

def check_env_secrets(path, container):
    for env in container.get("env", []):
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            check(ref["key"] in secrets.get(ref["name"], set()),
                  f"{path}: {env['name']} comes from secret {ref['name']}/{ref['key']}, which secret.yaml defines")

deployments = of_kind("Deployment") + of_kind("DaemonSet")
check(len(deployments) == 1, f"{k8s}: one worker Deployment or DaemonSet")
for path, deployment in deployments:
    pod = deployment["spec"]["template"]
    spec = pod["spec"]
    container = spec["containers"][0]
    args = container.get("args", [])
    check_command_line(args, f"{path} args")
    port = option(args, "--metrics-port")
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    check(port is not None and ports.get("metrics") == int(port),
          f"{path}: the container port named metrics is --metrics-port", f"{ports} vs {port}")
    annotations = pod.get("metadata", {}).get("annotations", {})
    check(annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") == port,
          f"{path}: prometheus.io scrape annotations name the metrics port")
    for probe in ("livenessProbe", "readinessProbe"):
        http = (container.get(probe) or {}).get("httpGet", {})
        check(http.get("path") == "/healthz" and http.get("port") in ("metrics", port and int(port)),
              f"{path}: {probe} is GET /healthz on the metrics port")
    grace_k8s = float(option(args, "--shutdown-grace", DEFAULT_GRACE))
    period = spec.get("terminationGracePeriodSeconds", 30)
    check(period > grace_k8s, f"{path}: terminationGracePeriodSeconds ({period}) exceeds the drain grace ({grace_k8s})")
    limits = container.get("resources", {}).get("limits", {})
    check(any("kvm" in key for key in limits), f"{path}: /dev/kvm requested from a device plugin", str(limits))
    check_memory_limit(args, memory_bytes(limits.get("memory"), K8S_UNITS), f"{path}: limits.memory")
    security = spec.get("securityContext", {})
    container_security = container.get("securityContext", {})
    check(security.get("runAsNonRoot") is True and not container_security.get("privileged", False)
          and container_security.get("allowPrivilegeEscalation") is False,
          f"{path}: non-root, unprivileged, no privilege escalation")
    check_env_secrets(path, container)
    if container_security.get("readOnlyRootFilesystem"):
        mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
        check("/tmp" in mounts, f"{path}: a writable /tmp for the VM-creation slot locks (read-only root)")

jobs = of_kind("Job")
check(len(jobs) == 1, f"{k8s}: a migrate Job")
for path, job in jobs:
    container = job["spec"]["template"]["spec"]["containers"][0]
    script = " ".join(container.get("command", []) + container.get("args", []))
    for subcommand in re.findall(r"hl-worker (guest [a-z]+|[a-z]+)", script):
        check(options_of(subcommand) is not None, f"{path}: `hl-worker {subcommand}` is a command of the binary")
    check_env_secrets(path, container)

for path, monitor in of_kind("PodMonitor"):
    endpoints = monitor["spec"].get("podMetricsEndpoints", [])
    check(any(e.get("port") == "metrics" and e.get("path", "/metrics") == "/metrics" for e in endpoints),
          f"{path}: PodMonitor scrapes the metrics port")

# --- The web dashboard: deploy/kubernetes/dashboard and its systemd unit ---
dash_k8s = "deploy/kubernetes/dashboard"
dash_docs = []
for name in sorted(os.listdir(dash_k8s)):
    if name.endswith((".yaml", ".yml")):
        path = os.path.join(dash_k8s, name)
        try:
            dash_docs += [(path, d) for d in yaml.safe_load_all(open(path)) if d is not None]
        except yaml.YAMLError as error:
            fail(f"{path}: YAML does not parse: {error}")
kustomized = next((d for _, d in dash_docs if d.get("kind") == "Kustomization"), {})
check(sorted(kustomized.get("resources", [])) == sorted(n for n in os.listdir(dash_k8s) if n.endswith(".yaml")
                                                       and n != "kustomization.yaml"),
      f"{dash_k8s}: kustomization.yaml lists every manifest")
dash_secrets = {d["metadata"]["name"]: set(d.get("stringData") or {}) for _, d in dash_docs if d.get("kind") == "Secret"}
for path, deployment in [(p, d) for p, d in dash_docs if d.get("kind") == "Deployment"]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container.get("args", [])
    check(args[:1] == ["dashboard"], f"{path}: runs `hl-worker dashboard`")
    check_command_line(args, f"{path} args")
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    check(ports.get("http") == int(option(args, "--port", "8080")), f"{path}: the container port named http is --port")
    probe = (container.get("readinessProbe") or {}).get("httpGet", {})
    check(probe.get("path") == "/healthz" and probe.get("port") == "http", f"{path}: readinessProbe is GET /healthz")
    for env in container.get("env", []):
        ref = (env.get("valueFrom") or {}).get("secretKeyRef")
        if ref:
            check(ref["key"] in dash_secrets.get(ref["name"], set()),
                  f"{path}: {env['name']} comes from secret {ref['name']}/{ref['key']}, which secret.yaml defines")
    security = deployment["spec"]["template"]["spec"].get("securityContext", {})
    check(security.get("runAsNonRoot") is True and container.get("securityContext", {}).get("allowPrivilegeEscalation") is False,
          f"{path}: non-root, no privilege escalation")
    check(not any("kvm" in key for key in container.get("resources", {}).get("limits", {})), f"{path}: asks for no /dev/kvm")
dash_unit = "deploy/systemd/hl-dashboard.service"
exec_start = [l.split("=", 1)[1] for l in open(dash_unit) if l.startswith("ExecStart=")]
check(len(exec_start) == 1, f"{dash_unit}: one ExecStart")
if exec_start:
    argv = shlex.split(exec_start[0])
    check(argv[0] == "/usr/bin/hl-worker" and argv[1:2] == ["dashboard"], f"{dash_unit}: ExecStart runs hl-worker dashboard")
    check_command_line(argv[1:], f"{dash_unit} ExecStart")
    check(option(argv, "--host", "127.0.0.1") == "127.0.0.1", f"{dash_unit}: listens on loopback (a proxy fronts it)")

# --- Grafana dashboard ---
dashboard_path = "deploy/grafana/hl-worker.json"
try:
    dashboard = json.load(open(dashboard_path))
    ok(f"{dashboard_path}: JSON parses")
except (OSError, json.JSONDecodeError) as error:
    dashboard = {"panels": []}
    fail(f"{dashboard_path}: {error}")
metric_labels = set(re.findall(r'label: "(hl_[a-z0-9_]+)"', open("Sources/Worker/WorkerMetrics.swift").read()))
migrations = "".join(open(os.path.join("migrations", f)).read() for f in sorted(os.listdir("migrations")))
views = set(re.findall(r"CREATE VIEW hl\.([a-z_]+)", migrations))
dashboard_views = {"queue_stats", "recent_failures", "throughput", "paused_queues"}
panels = [p for p in dashboard.get("panels", []) if p.get("type") != "row"]
check(len({p.get("id") for p in panels}) == len(panels), f"{dashboard_path}: panel ids are unique")
sql_statements = []
used_metrics, used_views = set(), set()
for panel in panels:
    title = panel.get("title", "?")
    targets = panel.get("targets", [])
    if not targets or "datasource" not in panel:
        fail(f"{dashboard_path}: panel {title!r} has no datasource or no queries")
    for target in targets:
        if "expr" in target:
            for name in re.findall(r"\b(hl_[a-z0-9_]+)", target["expr"]):
                used_metrics.add(re.sub(r"_(bucket|sum|count)$", "", name))
        if "rawSql" in target:
            sql_statements.append(target["rawSql"])
            used_views |= set(re.findall(r"\bhl\.([a-z_]+)", target["rawSql"]))
check(used_metrics and used_metrics <= metric_labels,
      f"{dashboard_path}: every Prometheus metric is one WorkerMetrics.swift defines",
      "unknown " + ", ".join(sorted(used_metrics - metric_labels)))
check(used_views and used_views <= views & dashboard_views,
      f"{dashboard_path}: every SQL panel reads hl views that hl_dashboard may read",
      ", ".join(sorted(used_views - (views & dashboard_views))))
with open(os.path.join(work, "dashboard.json"), "w") as out:
    json.dump({"sql": sql_statements, "metrics": sorted(used_metrics)}, out)

# --- Dockerfile ---
dockerfile_path = "deploy/container/Dockerfile"
dockerfile = open(dockerfile_path).read()
instructions = [re.split(r"\s+", l.strip(), maxsplit=1) for l in
                re.sub(r"\\\n", " ", dockerfile).splitlines() if l.strip() and not l.lstrip().startswith("#")]
stages = [i for i, (op, *_) in enumerate(instructions) if op.upper() == "FROM"]
check(len(stages) >= 2, f"{dockerfile_path}: multi-stage (build, then runtime)")
final = instructions[stages[-1]:] if stages else []
users = [rest[0] for op, *rest in final if op.upper() == "USER" and rest]
check(users and users[-1].split(":")[0] not in ("root", "0"), f"{dockerfile_path}: the runtime stage runs as a non-root USER")
runtime_text = " ".join(" ".join(parts) for parts in final)
check("libpq5" in runtime_text, f"{dockerfile_path}: the runtime installs libpq5")
built = " ".join(" ".join(parts) for parts in instructions)
for needed in ("/usr/share/hl-worker/migrations", "/usr/share/hl-worker/guests", "/usr/bin/hl-worker",
               "swift build -c release", "guests/build.sh"):
    check(needed in built, f"{dockerfile_path}: {needed}")
cmd = [json.loads(rest[0]) for op, *rest in final if op.upper() == "CMD" and rest]
entry = [json.loads(rest[0]) for op, *rest in final if op.upper() == "ENTRYPOINT" and rest]
check(entry and entry[-1] == ["/usr/bin/hl-worker"], f"{dockerfile_path}: ENTRYPOINT is the binary")
if cmd:
    check_command_line(cmd[-1], f"{dockerfile_path} CMD")

sys.exit(1 if failures else 0)
PY
}

if static_checks; then :; else failures=$((failures + 1)); fi

# MARK: systemd-analyze

if ! command -v systemd-analyze >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "      installing systemd for systemd-analyze"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends systemd >/dev/null 2>&1 || true
fi
if command -v systemd-analyze >/dev/null; then
    # verify needs ExecStart's binary to exist: point it at the one built here.
    mkdir -p "$work/systemd"
    sed "s#^ExecStart=/usr/bin/hl-worker #ExecStart=$bin #" "$unit" > "$work/systemd/hl-worker.service"
    if output="$(cd "$work/systemd" && systemd-analyze verify ./hl-worker.service 2>&1)"; then status=0; else status=$?; fi
    if [ "$status" = 0 ] && [ -z "$output" ]; then
        pass "$unit: systemd-analyze verify"
    elif grep -q "hl-worker.service" <<<"$output"; then
        fail "$unit: systemd-analyze verify: $output"
    else
        skip "$unit: systemd-analyze verify cannot run here ($output); the parse check above stands in"
    fi
else
    skip "$unit: no systemd-analyze (not root, or no apt); the parse check above stands in"
fi

# MARK: kubectl kustomize

if command -v kubectl >/dev/null; then
    if output="$(kubectl kustomize deploy/kubernetes 2>&1)"; then
        pass "deploy/kubernetes: kubectl kustomize builds ($(grep -c '^kind:' <<<"$output") objects)"
    else
        fail "deploy/kubernetes: kubectl kustomize: $output"
    fi
else
    skip "deploy/kubernetes: no kubectl for kustomize"
fi

# MARK: Live checks against PostgreSQL and KVM

admin_url="${DATABASE_URL:-}"
if [ -z "$admin_url" ]; then
    admin_url="$(bash scripts/pg.sh start 2>/dev/null | sed -n 's/^DATABASE_URL=//p' || true)"
fi
if [ -z "$admin_url" ] || ! command -v psql >/dev/null; then
    skip "live checks: no PostgreSQL (set DATABASE_URL, or let scripts/pg.sh start one) or no psql"
else
    database="hl_deploy_check_$$"
    psql_admin() { psql "$admin_url" -v ON_ERROR_STOP=1 -qAt "$@"; }
    trap 'psql_admin -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" >/dev/null 2>&1 || true; cleanup' EXIT
    psql_admin -c "CREATE DATABASE $database"
    # The admin's URL for the scratch database, optionally acting as a group
    # role from the first statement on (libpq's options=-c role=...), so
    # that no login or password has to be made up.
    url_for() {
        python3 - "$admin_url" "$database" "${1:-}" <<'PY'
import sys, urllib.parse as parse
url, database, role = sys.argv[1:]
if "://" in url:
    parts = parse.urlsplit(url)
    query = parse.parse_qsl(parts.query)
    if role:
        query.append(("options", f"-c role={role}"))
    print(parse.urlunsplit((parts.scheme, parts.netloc, "/" + database, parse.urlencode(query, quote_via=parse.quote), "")))
else:
    # key=value form: a later setting overrides an earlier one.
    print(f"{url} dbname={database}" + (f" options='-c role={role}'" if role else ""))
PY
    }
    if DATABASE_URL="$(url_for)" "$bin" migrate >/dev/null; then
        pass "live: hl-worker migrate on a fresh database"
    else
        fail "live: hl-worker migrate"
    fi

    # Every SQL panel, as a dashboard user would run it.
    dashboard_url="$(url_for hl_dashboard)"
    while IFS= read -r -d '' statement; do
        if output="$(psql "$dashboard_url" -v ON_ERROR_STOP=1 -qAt -c "$statement" 2>&1)"; then
            pass "live: dashboard SQL runs as hl_dashboard: $(head -n 1 <<<"$statement")"
        else
            fail "live: dashboard SQL as hl_dashboard: $(head -n 1 <<<"$statement"): $output"
        fi
    done < <(python3 -c 'import json, sys
for s in json.load(open(sys.argv[1]))["sql"]: sys.stdout.write(s + "\0")' "$work/dashboard.json")

    # The unit's own command line, as a member of hl_worker.
    if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
        mapfile -t args < <(python3 -c 'import json, sys
args = json.load(open(sys.argv[1]))["args"]
for i, a in enumerate(args):
    print(sys.argv[2] if i > 0 and args[i - 1] == "--metrics-port" else a)' "$work/unit.json" "$port")
        stop_timeout="$(python3 -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["stop"]))' "$work/unit.json")"
        DATABASE_URL="$(url_for hl_worker)" "$bin" "${args[@]}" >"$work/worker.log" 2>&1 &
        worker_pid=$!
        if python3 - "$port" "$worker_pid" "$work/dashboard.json" >"$work/probe.log" 2>&1 <<'PY'
import json, os, sys, time, urllib.request

port, pid, dashboard = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 60
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("the worker exited before turning healthy")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            if response.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("/healthz did not answer 200 within 60 s")
    time.sleep(0.5)
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
    body = response.read().decode()
# Failure counters exist per kind only once a job has failed that way, the
# per-queue outcome counters once a job of that queue has finished, and the
# queue gauges only while some queue holds jobs.
later = {"hl_jobs_failed_total", "hl_jobs_finished_total", "hl_queue_jobs", "hl_queue_oldest_available_age_seconds"}
missing = [m for m in json.load(open(dashboard))["metrics"] if m not in later and m not in body]
if missing:
    sys.exit("/metrics lacks " + ", ".join(missing))
PY
        then
            pass "live: the unit's ExecStart, run as hl_worker, is healthy on /healthz and serves the dashboard's metrics"
        else
            fail "live: the unit's ExecStart: $(tail -n 3 "$work/probe.log") (worker log: $(tail -n 5 "$work/worker.log"))"
        fi
        if kill -0 "$worker_pid" 2>/dev/null; then
            kill -TERM "$worker_pid"
            for _ in $(seq $((stop_timeout * 10))); do
                kill -0 "$worker_pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$worker_pid" 2>/dev/null; then
                fail "live: the worker did not stop within TimeoutStopSec=${stop_timeout}s of SIGTERM"
            elif wait "$worker_pid"; then
                pass "live: SIGTERM drains and exits 0 within TimeoutStopSec"
            else
                fail "live: the worker exited non-zero after SIGTERM: $(tail -n 5 "$work/worker.log")"
            fi
            worker_pid=""
        fi
    else
        skip "live: /dev/kvm is not usable here, so the unit's command line is not started"
    fi
fi

if [ "$failures" -gt 0 ]; then
    echo "deploy/check.sh: $failures check(s) failed" >&2
    exit 1
fi
echo "deploy/check.sh: all checks passed"
