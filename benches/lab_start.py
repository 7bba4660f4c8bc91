"""Times a datalab's start on `colo up` (see lab_start.sh): createDatalab → RUNNING (JupyterLab
answers through colo) → a kernel has executed a cell that reads a FITS file from /media/data, and
colo's resident memory with the labs running; colo's lab proxy against JupyterLab's own socket
(lab_proxy.py); then the same JupyterLab started by JupyterHub 5
(hub_start.py) reading the same files from a local directory. Prints one line per run, the
medians and colo's time as a fraction of JupyterHub's.

    lab_start.py COLO WORK RUNS [HUB_VENV CHP]   (LAB_CPU_MILLIS: the colo lab's CPU, default 2000)"""
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import requests
import websocket

import lab_proxy

colo, work, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
hub_venv, chp = (sys.argv[4], sys.argv[5]) if len(sys.argv) > 5 else (None, None)
cpu_millis = int(os.environ.get("LAB_CPU_MILLIS", "2000"))
env = {**os.environ, "COLO_HOME": os.path.join(work, "home")}
root = os.path.join(work, "mnt")
proc = subprocess.Popen([colo, "up", "--root", root, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
                        stderr=open(os.path.join(work, "up.err"), "w"), text=True, env=env)
token = base = None
line = ""
while not line.startswith("ready"):
    line = proc.stdout.readline()
    if m := re.match(r"^token: (colo_\S+)", line):
        token = m.group(1)
    if line.startswith("tap "):
        base = line.split()[1].rsplit("/tap", 1)[0]
    assert proc.poll() is None, "colo up stopped"
auth = {"Authorization": f"Bearer {token}"}


def gql(query, variables=None):
    return requests.post(base + "/graphql", json={"query": query, "variables": variables or {}}, headers=auth).json()


CELL = ("import glob\nfrom astropy.io import fits\n"
        "print(fits.open(sorted(glob.glob('/media/data/sample/images/*.fits'))[0])[0].data.shape)")


def first_cell(lab):
    kid = requests.post(f"{base}/labs/{lab}/api/kernels", headers=auth, json={}).json()["id"]
    ws = websocket.create_connection(f"{base.replace('http', 'ws')}/labs/{lab}/api/kernels/{kid}/channels",
                                     header=[f"Authorization: Bearer {token}"])
    m = lab_proxy.execute(ws, CELL)
    assert m["content"]["status"] == "ok", m


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1]) / 1024


try:
    running, cells, labs = [], [], []
    rss_before = rss_mib(proc.pid)
    for n in range(runs):
        t0 = time.perf_counter()
        r = gql('mutation($n: String!, $c: Int!) { createDatalab(input: {name: $n, image: "jupyterlab", '
                'volumes: ["sample"], cpuMillis: $c, memoryMib: 1024}) { datalab { id } } }',
                {"n": f"bench{n}", "c": cpu_millis})
        lab = r["data"]["createDatalab"]["datalab"]["id"]
        while gql('query($id: String!) { datalab(id: $id) { state reason } }', {"id": lab})["data"]["datalab"]["state"] != "RUNNING":
            time.sleep(0.02)
        t1 = time.perf_counter()
        first_cell(lab)
        t2 = time.perf_counter()
        running.append(t1 - t0)
        cells.append(t2 - t0)
        labs.append(lab)
        print(f"run {n}: RUNNING after {t1 - t0:.2f} s, first cell done after {t2 - t0:.2f} s")
        # As many running as the per-user limits allow (4 labs, 4 cores) for the memory figure,
        # then they are stopped.
        if len(labs) == min(4, 4000 // cpu_millis):
            rss = rss_mib(proc.pid)
            print(f"colo RSS: {rss_before:.0f} MiB with no lab, {rss:.0f} MiB with {len(labs)} running "
                  f"({(rss - rss_before) / len(labs):.1f} MiB per lab)")
            for lid in labs:
                gql('mutation($id: String!) { destroyDatalab(id: $id) }', {"id": lid})
            labs = []
    for lid in labs:
        gql('mutation($id: String!) { destroyDatalab(id: $id) }', {"id": lid})
    print(f"colo, {cpu_millis} millicores, median of {runs}: RUNNING {statistics.median(running):.2f} s, "
          f"first cell {statistics.median(cells):.2f} s", flush=True)
    # The proxy against going to JupyterLab directly: a lab with a volume holding a 100 MiB file.
    big = os.path.join(work, "bigdata")
    os.makedirs(big, exist_ok=True)
    size = 100 << 20
    with open(os.path.join(big, "big.bin"), "wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))
    with open(os.path.join(work, "bigdata.toml"), "w") as f:
        f.write(f'[[volume]]\nname = "bigdata"\nurl = "file://{big}"\n')
    subprocess.run([colo, "volume", "add", "--owner", "admin", "--from", os.path.join(work, "bigdata.toml")],
                   env=env, check=True, capture_output=True)
    r = gql('mutation { createDatalab(input: {name: "proxy", image: "jupyterlab", volumes: ["bigdata"], '
            'cpuMillis: 2000, memoryMib: 1024}) { datalab { id } } }')
    lab = r["data"]["createDatalab"]["datalab"]["id"]
    while gql('query($id: String!) { datalab(id: $id) { state } }', {"id": lab})["data"]["datalab"]["state"] != "RUNNING":
        time.sleep(0.05)
    lab_proxy.run(base, token, env["COLO_HOME"], lab, "bigdata/big.bin", size)
    gql('mutation($id: String!) { destroyDatalab(id: $id) }', {"id": lab})
    if hub_venv:
        import shutil
        import hub_start
        data = os.path.join(work, "hub-data")
        shutil.copytree(os.path.join(root, "sample", "images"), os.path.join(data, "sample", "images"))
        os.chmod(work, 0o755)
        subprocess.run(["chmod", "-R", "a+rX", data], check=True)
        ready, hub_cells = hub_start.run(os.path.join(work, "hub"), hub_venv, chp, data,
                                         CELL.replace("/media/data", data), runs)
        print(f"jupyterhub, median of {runs}: ready {statistics.median(ready):.2f} s, "
              f"first cell {statistics.median(hub_cells):.2f} s")
        print(f"colo / jupyterhub: RUNNING vs ready {statistics.median(running) / statistics.median(ready):.2f}, "
              f"first cell {statistics.median(cells) / statistics.median(hub_cells):.2f}")
finally:
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
