"""Inodes after walks over a big tree (issue 16, part 6): a local volume of DIRS x FILES empty files
is mounted by `colo mount`; three times `find -printf %s` (a lookup per entry), then
`drop_caches` until the kernel has forgotten its dentries and inodes; prints colo's inode count
(`colo_fs_inodes`) and RSS after each step.

usage: inode_walk.py COLO_BIN [DIRS FILES]   (default 1000 x 1000; needs root for drop_caches)
"""
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

METRICS = "127.0.0.1:18799"


def main():
    colo = sys.argv[1]
    dirs, files = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1000, 1000)
    tree = f"/var/tmp/colo-walk-{dirs}x{files}"
    if not os.path.exists(os.path.join(tree, f"d{dirs - 1:04d}", f"f{files - 1:04d}")):
        for d in range(dirs):
            os.makedirs(os.path.join(tree, f"d{d:04d}"), exist_ok=True)
            for i in range(files):
                open(os.path.join(tree, f"d{d:04d}", f"f{i:04d}"), "wb").close()
    work = tempfile.mkdtemp(prefix="colo-walk-")
    config = os.path.join(work, "colo.toml")
    with open(config, "w") as f:
        f.write(f'metrics_listen = "{METRICS}"\n[cache]\ndir = "{work}/cache"\nmemory_mib = 64\n'
                f'disk_gib = 0\n[[volume]]\nname = "tree"\nurl = "file://{tree}"\n')
    mnt = os.path.join(work, "mnt")
    proc = subprocess.Popen([colo, "mount", "--config", config, "--root", mnt],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    while not proc.stdout.readline().startswith("ready"):
        if proc.poll() is not None:
            raise SystemExit("colo mount did not come up")

    def inodes():
        text = urllib.request.urlopen(f"http://{METRICS}/metrics").read().decode()
        return next(int(line.split()[1]) for line in text.splitlines()
                    if line.startswith("colo_fs_inodes "))

    def rss_mib():
        with open(f"/proc/{proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) // 1024

    try:
        print(f"idle: inodes {inodes()}, RSS {rss_mib()} MiB", flush=True)
        for walk in (1, 2, 3):
            started = time.time()
            out = subprocess.run(["find", os.path.join(mnt, "tree"), "-printf", "%s\n"],
                                 check=True, capture_output=True, text=True).stdout
            print(f"walk {walk}: {len(out.splitlines())} entries in {time.time() - started:.0f} s; "
                  f"inodes {inodes()}, RSS {rss_mib()} MiB", flush=True)
            for _ in range(30):
                with open("/proc/sys/vm/drop_caches", "w") as f:
                    f.write("2\n")
                if inodes() < 100:
                    break
                time.sleep(1)
            print(f"  forgotten: inodes {inodes()}, RSS {rss_mib()} MiB", flush=True)
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
