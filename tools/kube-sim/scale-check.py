#!/usr/bin/env python3
"""Scale check: N clusters x M machines in one kube-sim, then its resident memory.

Starts the kube-sim binary (path as the first argument), creates N TenantControlPlanes and
N*M VirtualMachines with their cloud-init Secrets through the API (aiohttp, 32 in flight),
waits until every Node has joined, and prints request rate, convergence time and the
process's VmRSS/VmHWM. Not part of the test suite; needs `pip install aiohttp`.

    python3 tools/kube-sim/scale-check.py .build/release/kube-sim --clusters 1000 --machines 6
"""
import argparse, asyncio, base64, json, os, re, ssl, subprocess, tempfile, time

import aiohttp


def kubeconfig_values(path):
    text = open(path).read()
    server = re.search(r"server: (\S+)", text).group(1)
    token = re.search(r"token: (\S+)", text).group(1)
    ca = base64.b64decode(re.search(r"certificate-authority-data: (\S+)", text).group(1)).decode()
    return server, token, ca


def rss(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = value.strip()
    return fields


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--machines", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    state = tempfile.mkdtemp(prefix="kube-sim-scale-")
    started = time.monotonic()
    process = subprocess.Popen(
        [args.binary, "--state-dir", state, "--seed", "1", "--vm-ready-ms", "50", "--node-join-ms", "20",
         "--control-plane-provision-ms", "50"], stdout=subprocess.PIPE, text=True)
    first = process.stdout.readline().strip()
    print(f"{first} after {time.monotonic() - started:.3f}s; idle {rss(process.pid)}")
    server, token, ca = kubeconfig_values(os.path.join(state, "management.kubeconfig"))
    context = ssl.create_default_context(cadata=ca)
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(ssl=context, limit=args.concurrency)
    semaphore = asyncio.Semaphore(args.concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async def post(path, body):
            async with semaphore:
                async with session.post(server + path, json=body) as reply:
                    if reply.status != 201:
                        raise SystemExit(f"{path}: {reply.status} {await reply.text()}")

        requests = 0
        begin = time.monotonic()
        namespace = "/api/v1/namespaces"
        await post(namespace, {"metadata": {"name": "fleet"}})
        await asyncio.gather(*[
            post("/apis/kamaji.clastix.io/v1alpha1/namespaces/fleet/tenantcontrolplanes",
                 {"metadata": {"name": f"c{c}"}, "spec": {"kubernetes": {"version": "v1.33.2"}}})
            for c in range(args.clusters)])
        requests += args.clusters + 1
        for c in range(args.clusters):
            pass
        bodies = []
        for c in range(args.clusters):
            for m in range(args.machines):
                name = f"c{c}-m{m}"
                bodies.append(post(f"{namespace}/fleet/secrets", {
                    "metadata": {"name": f"{name}-userdata"},
                    "stringData": {"userdata": "kubernetesVersion: v1.33.2\n"}}))
                bodies.append(post("/apis/kubevirt.io/v1/namespaces/fleet/virtualmachines", {
                    "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": f"c{c}"}},
                    "spec": {"runStrategy": "Always", "template": {"spec": {
                        "domain": {"cpu": {"cores": 2}, "memory": {"guest": "4Gi"}},
                        "volumes": [{"name": "cloudinit", "cloudInitConfigDrive": {"secretRef": {"name": f"{name}-userdata"}}}]}}}}))
        await asyncio.gather(*bodies)
        requests += len(bodies)
        created = time.monotonic() - begin
        print(f"{requests} creates in {created:.1f}s = {requests / created:.0f}/s ({args.concurrency} in flight)")
        expected = args.clusters * args.machines
        while True:
            async with session.get(server + "/_sim/clusters") as reply:
                clusters = (await reply.json())["clusters"]
            nodes = sum(c["nodes"] for c in clusters)
            if len(clusters) == args.clusters and nodes == expected:
                break
            await asyncio.sleep(0.5)
        print(f"all {expected} nodes joined in {len(clusters)} clusters after {time.monotonic() - begin:.1f}s")
        async with session.get(server + "/_sim/ledger?after=999999999") as reply:
            pass
    print(f"memory with {args.clusters} clusters x {args.machines} machines: {rss(process.pid)}")
    process.terminate()
    print(f"exit status on SIGTERM: {process.wait(timeout=30)}")


asyncio.run(main())
