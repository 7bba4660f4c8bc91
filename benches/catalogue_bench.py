"""The platform's figures (issue "Users, volume grants and the catalogue"), on a release colo:

1. catalogue search over 100,000 items, cold (the first query after `colo serve` starts, with the
   OS page cache dropped) and warm (median of repeats), for five kinds of query;
2. GraphQL request overhead: the same search through `POST /graphql` and through the plain REST
   handler `GET /api/v1/search`, median of 300 each, on one keep-alive connection;
3. time for a granted volume to appear in a running mount (`colo volume grant` in another process
   until the path exists in the grantee's folder), 10 times.

The items follow real missions' metadata patterns: ESA and NASA missions with their instruments
and wavelength domains, dataset names like `gaiadr3.vari_cepheid` or `xsa.v_epic_source`.

  python benches/catalogue_bench.py COLO_BIN WORKDIR
"""
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time

import requests

COLO, WORK = sys.argv[1], sys.argv[2]
HOME = os.path.join(WORK, "home")
ENV = {**os.environ, "COLO_HOME": HOME}

MISSIONS = {
    "Gaia": ("Space Science", [("Astrometric instrument", "Optical"), ("Photometer", "Optical"), ("RVS", "Optical")]),
    "XMM-Newton": ("Space Science", [("EPIC", "X-ray"), ("RGS", "X-ray"), ("OM", "Ultraviolet")]),
    "Herschel": ("Space Science", [("PACS", "Infrared"), ("SPIRE", "Infrared"), ("HIFI", "Millimetre")]),
    "Planck": ("Space Science", [("LFI", "Millimetre"), ("HFI", "Millimetre")]),
    "INTEGRAL": ("Space Science", [("IBIS", "Gamma-ray"), ("SPI", "Gamma-ray"), ("JEM-X", "X-ray")]),
    "Hubble": ("Space Science", [("ACS", "Optical"), ("WFC3", "Infrared"), ("COS", "Ultraviolet")]),
    "JWST": ("Space Science", [("NIRCam", "Infrared"), ("MIRI", "Infrared"), ("NIRSpec", "Infrared")]),
    "Euclid": ("Space Science", [("VIS", "Optical"), ("NISP", "Infrared")]),
    "Mars Express": ("Planetary", [("HRSC", "Optical"), ("OMEGA", "Infrared"), ("MARSIS", "Radio")]),
    "Rosetta": ("Planetary", [("OSIRIS", "Optical"), ("VIRTIS", "Infrared"), ("ALICE", "Ultraviolet")]),
    "Sentinel-2": ("Earth Observation", [("MSI", "Optical")]),
    "Sentinel-1": ("Earth Observation", [("C-SAR", "Radio")]),
}
WORDS = ["source", "catalogue", "light curve", "spectra", "epoch photometry", "cepheid", "rr lyrae",
         "parallax", "proper motion", "cluster", "galaxy", "quasar", "transient", "mosaic", "map",
         "calibrated", "level 2", "level 3", "image", "cube", "time series", "survey", "field"]


def generate(n):
    random.seed(11)
    per = n // len(MISSIONS)
    files = []
    for mission, (domain, instruments) in MISSIONS.items():
        lines = [f'mission = "{mission}"', f'domain = "{domain}"']
        slug = mission.lower().replace(" ", "").replace("-", "")
        for i in range(per):
            instrument, wavelength = random.choice(instruments)
            kind = random.choices(["dataset", "volume", "datalab_image"], [0.85, 0.14, 0.01])[0]
            words = random.sample(WORDS, 3)
            lines += [f"[[{kind}]]", f'key = "{slug}.{words[0].replace(" ", "_")}_{i:05d}"',
                      f'title = "{mission} {instrument} {words[0]} {i}"', f'instrument = "{instrument}"',
                      f'wavelength = "{wavelength}"',
                      f'description = "{mission} {words[0]} {words[1]} {words[2]} from {instrument}, release {i % 7}."']
        path = os.path.join(WORK, f"{slug}.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        files.append(path)
    return files


QUERIES = {
    "facets only": 'domain:"Space Science" type:dataset',
    "one facet + word": "mission:Gaia parallax",
    "free text, 2 words": "proper motion",
    "prefix": "cephe",
    "everything (counts only)": "",
}


def serve():
    proc = subprocess.Popen([COLO, "serve", "--listen", "127.0.0.1:0"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    while True:
        line = proc.stdout.readline()
        if line.startswith("tap "):
            return proc, line.split()[1].rsplit("/tap", 1)[0]
        if proc.poll() is not None:
            raise SystemExit("colo serve did not start")


def ms(seconds):
    return f"{seconds * 1000:.2f}"


def main():
    os.makedirs(HOME, exist_ok=True)
    files = generate(100_000)
    t = time.time()
    subprocess.run([COLO, "catalog", "load", *files], env=ENV, check=True, capture_output=True)
    print(f"load 100,000 items from {len(files)} mission files: {time.time() - t:.1f} s")

    print("\n| query | cold (ms) | warm median (ms) | matches |")
    print("|---|---|---|---|")
    for name, q in QUERIES.items():
        subprocess.run(["sync"])
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        proc, base = serve()
        s = requests.Session()
        t = time.time()
        r = s.get(f"{base}/api/v1/search", params={"q": q, "first": 20})
        cold = time.time() - t
        total = r.json()["total"]
        warm = []
        for _ in range(50):
            t = time.time()
            s.get(f"{base}/api/v1/search", params={"q": q, "first": 20}).raise_for_status()
            warm.append(time.time() - t)
        print(f"| {name} `{q}` | {ms(cold)} | {ms(statistics.median(warm))} | {total} |")
        proc.send_signal(signal.SIGINT)
        proc.wait()

    proc, base = serve()
    s = requests.Session()
    q = "mission:Gaia parallax"
    gql = {"query": "query($q: String!) { search(q: $q, first: 20) { total items { key title mission "
                    "instrument domain wavelength type description } facets { name values { value count } } } }",
           "variables": {"q": q}}
    for _ in range(20):
        s.post(f"{base}/graphql", json=gql).raise_for_status()
        s.get(f"{base}/api/v1/search", params={"q": q, "first": 20}).raise_for_status()
    g, r = [], []
    for _ in range(300):
        t = time.time()
        s.post(f"{base}/graphql", json=gql).raise_for_status()
        g.append(time.time() - t)
        t = time.time()
        s.get(f"{base}/api/v1/search", params={"q": q, "first": 20}).raise_for_status()
        r.append(time.time() - t)
    print(f"\nGraphQL vs REST, `{q}`, median of 300: GraphQL {ms(statistics.median(g))} ms, "
          f"REST {ms(statistics.median(r))} ms, overhead {ms(statistics.median(g) - statistics.median(r))} ms")
    proc.send_signal(signal.SIGINT)
    proc.wait()

    # A granted volume appearing in a running mount.
    folder = os.path.join(WORK, "alice-data")
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, "x.txt"), "w").write("x")
    for user in ("alice", "bob"):
        subprocess.run([COLO, "user", "add", user], env=ENV, check=True, capture_output=True)
    vol = os.path.join(WORK, "vol.toml")
    open(vol, "w").write(f'[[volume]]\nname = "data"\nurl = "file://{folder}"\n')
    subprocess.run([COLO, "volume", "add", "--owner", "alice", "--from", vol], env=ENV, check=True, capture_output=True)
    root = os.path.join(WORK, "mnt")
    cfg = os.path.join(WORK, "colo.toml")
    empty = os.path.join(WORK, "empty")
    os.makedirs(empty, exist_ok=True)
    open(cfg, "w").write(f'metrics_listen = "127.0.0.1:0"\n[cache]\ndir = "{WORK}/cache"\n'
                         f'[[volume]]\nname = "archive"\nurl = "file://{empty}"\n')
    mount = subprocess.Popen([COLO, "mount", "--config", cfg, "--root", root], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while not mount.stdout.readline().startswith("ready"):
        pass
    target = os.path.join(root, ".users", "bob", "data@alice", "x.txt")
    times = []
    for _ in range(10):
        t = time.time()
        subprocess.run([COLO, "volume", "grant", "alice/data", "--user", "bob"], env=ENV, check=True,
                       capture_output=True)
        while not os.path.exists(target):
            time.sleep(0.005)
        times.append(time.time() - t)
        subprocess.run([COLO, "volume", "revoke", "alice/data", "--user", "bob"], env=ENV, check=True,
                       capture_output=True)
        while os.path.exists(target):
            time.sleep(0.005)
    mount.send_signal(signal.SIGINT)
    mount.wait()
    print(f"\ngrant → visible in bob's folder (10 runs, incl. the CLI process): median "
          f"{ms(statistics.median(times))} ms, max {ms(max(times))} ms")


main()
