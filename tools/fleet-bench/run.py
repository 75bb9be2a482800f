#!/usr/bin/env python3
"""Fleet benchmark (the fleet issue): N clusters x M machines provisioned by `capstan serve`
against kube-sim with zero delays, then every cluster upgraded by chain to the catalog's newest
version. Prints wall times, serve's CPU per cluster, kube-sim ledger entries (API writes) per
cluster and log events per cluster. Not a test; run it under `flock /tmp/bench.lock`.

    swift build -c release --product capstan && swift build -c release --product kube-sim
    python3 tools/fleet-bench/run.py --bin .build/release --clusters 1000 --machines 6

Each cluster is the CLI fixtures' fleet (Tests/CLITests/Fixtures/fleet.yaml: a Kamaji control
plane at v1.33.4, one MachineDeployment, a health check) renamed, with `replicas: M`.
"""
import argparse, concurrent.futures, json, os, re, shutil, signal, ssl, subprocess, sys, tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "Tests", "CLITests", "Fixtures")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def capstan(bin_dir, *args):
    return subprocess.run([os.path.join(bin_dir, "capstan"), *args], capture_output=True, text=True)


def clusters_json(bin_dir, data):
    out = capstan(bin_dir, "get", "clusters", "-A", "-o", "json", "--data-dir", data)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout or "[]")


def wait_until(what, predicate, bin_dir, data, serve, timeout):
    began = time.monotonic()
    last = ""
    while time.monotonic() - began < timeout:
        if serve.poll() is not None:
            sys.exit(f"capstan serve exited with {serve.returncode} while waiting for {what}")
        clusters = clusters_json(bin_dir, data)
        if clusters is not None:
            done, total = predicate(clusters)
            note = f"{what}: {done}/{total} clusters"
            if note != last:
                print(f"  [{time.monotonic() - began:6.1f} s] {note}", file=sys.stderr, flush=True)
                last = note
            if total and done == total:
                return time.monotonic() - began
        time.sleep(1)
    sys.exit(f"timed out after {timeout} s waiting for {what} ({last})")


def provisioned(machines):
    def check(clusters):
        done = sum(
            1 for c in clusters
            if c["controlPlane"].get("ready")
            and all(d["readyMachines"] == machines and d["machines"] == machines for d in c["deployments"]))
        return done, len(clusters)
    return check


def upgraded(target, machines):
    def check(clusters):
        done = sum(
            1 for c in clusters
            if c["controlPlane"].get("installedVersion") == target and c["controlPlane"].get("ready")
            and all(d.get("versions") == {target: machines} and d["readyMachines"] == machines for d in c["deployments"]))
        return done, len(clusters)
    return check


def ledger_count(server, token, ca_file):
    context = ssl.create_default_context(cafile=ca_file)
    request = urllib.request.Request(server + "/_sim/ledger?after=0", headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(request, context=context) as response:
        return json.load(response)["count"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=".build/release", help="directory with capstan and kube-sim")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=6)
    parser.add_argument("--to", default="v1.36.1")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per phase")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    scratch = tempfile.mkdtemp(prefix="fleet-bench.")
    data, sim_state = os.path.join(scratch, "data"), os.path.join(scratch, "sim")
    fleet = open(os.path.join(FIXTURES, "fleet.yaml")).read().replace("  replicas: 3\n", f"  replicas: {args.machines}\n")
    documents = []
    for index in range(args.clusters):
        name = f"c{index:04d}"
        documents.append(re.sub(r"\bprod\b", name, fleet))
    manifest = os.path.join(scratch, "fleet.yaml")
    open(manifest, "w").write("\n---\n".join(documents))

    print(f"load average at start: {open('/proc/loadavg').read().strip()}")
    sim = subprocess.Popen(
        [os.path.join(args.bin, "kube-sim"), "--state-dir", sim_state, "--vm-ready-ms", "0", "--node-join-ms", "0",
         "--control-plane-provision-ms", "0", "--control-plane-upgrade-ms", "0", "--in-place-update-ms", "0",
         "--jitter", "0"],
        stdout=subprocess.PIPE, stderr=open(os.path.join(scratch, "kube-sim.log"), "w"), text=True)
    server = re.search(r"(https://\S+)", sim.stdout.readline()).group(1)
    kubeconfig = os.path.join(sim_state, "management.kubeconfig")
    token = re.search(r"token: (\S+)", open(kubeconfig).read()).group(1)
    serve = None
    try:
        began = time.monotonic()
        applied = capstan(args.bin, "apply", "-f", os.path.join(FIXTURES, "catalog.yaml"), "-f", manifest, "--data-dir", data)
        if applied.returncode != 0:
            sys.exit(f"apply failed: {applied.stderr[:2000]}")
        apply_seconds = time.monotonic() - began
        serve = subprocess.Popen(
            [os.path.join(args.bin, "capstan"), "serve", "--data-dir", data, "--kubeconfig", kubeconfig],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(scratch, "serve.log"), "w"))
        provision = wait_until("provisioned", provisioned(args.machines), args.bin, data, serve, args.timeout)
        cpu_provision = cpu_seconds(serve.pid)
        writes_provision = ledger_count(server, token, os.path.join(sim_state, "ca.crt"))
        events_provision = json.loads(capstan(args.bin, "log", "stats", "-o", "json", "--data-dir", data).stdout)["events"]

        # The intents are recorded by `capstan upgrade` processes, 4 at a time; serve starts each
        # chain as its intent lands, so the upgrade's wall time runs from the first intent.
        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            results = pool.map(
                lambda index: capstan(args.bin, "upgrade", f"c{index:04d}", "--to", args.to, "--data-dir", data),
                range(args.clusters))
            for index, out in enumerate(results):
                if out.returncode != 0:
                    sys.exit(f"upgrade c{index:04d} failed: {out.stderr[:2000]}")
        intents = time.monotonic() - began
        upgrade = intents + wait_until(
            f"upgraded to {args.to}", upgraded(args.to, args.machines), args.bin, data, serve, args.timeout)
        cpu_total = cpu_seconds(serve.pid)
        writes_total = ledger_count(server, token, os.path.join(sim_state, "ca.crt"))
        events_total = json.loads(capstan(args.bin, "log", "stats", "-o", "json", "--data-dir", data).stdout)["events"]
        n = args.clusters
        print(f"load average at end: {open('/proc/loadavg').read().strip()}")
        print(f"fleet: {n} clusters x {args.machines} machines; apply {apply_seconds:.1f} s")
        print(f"provision: {provision:.1f} s wall; serve CPU {cpu_provision:.1f} s ({1000 * cpu_provision / n:.1f} ms per cluster); "
              f"{writes_provision / n:.1f} API writes per cluster; {events_provision / n:.1f} log events per cluster")
        print(f"upgrade to {args.to}: {upgrade:.1f} s wall from the first intent ({intents:.1f} s to record the {n} intents, one capstan process each); "
              f"serve CPU {cpu_total - cpu_provision:.1f} s ({1000 * (cpu_total - cpu_provision) / n:.1f} ms per cluster); "
              f"{(writes_total - writes_provision) / n:.1f} API writes per cluster; {(events_total - events_provision) / n:.1f} log events per cluster")
    finally:
        if serve and serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                serve.kill()
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
