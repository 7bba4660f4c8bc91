"""`ls -l` of a folder: the entries reach the kernel with their attributes (READDIRPLUS), so
stat'ing all of them after the listing makes no lookup per entry, the sizes are the origin's, the
folder is listed at the origin once however many replies the entries take, and the kernel's
references stay balanced (it forgets the entries again)."""
import os
import subprocess
import time
import uuid

from conftest import RUN, Colo, metrics_at, write_config

METRICS = "127.0.0.1:18781"
VOLUME = "listing"
LOOKUPS = 'colo_fs_operation_seconds_count{op="lookup"}'
LISTS = f'colo_origin_requests_total{{volume="{VOLUME}",kind="list"}}'
FILES = 3000  # entries for many READDIRPLUS replies


def test_ls_l_gets_attributes_with_the_entries(tmp_path):
    origin = os.path.join(RUN, f"listing-{uuid.uuid4().hex[:6]}")
    os.makedirs(os.path.join(origin, "many"))
    for i in range(FILES):
        with open(os.path.join(origin, "many", f"f{i:05d}.dat"), "wb") as f:
            f.write(b"x" * (i % 97))
    cfg = str(tmp_path / "c.toml")
    write_config(cfg, f'\n[[volume]]\nname = "{VOLUME}"\nurl = "file://{origin}"\nmetadata_ttl_secs = 3600\n',
                 metrics_listen=METRICS)
    c = Colo(cfg, str(tmp_path / "mnt"))
    try:
        folder = c.path(VOLUME, "many")
        os.stat(folder)
        before = metrics_at(METRICS)
        out = subprocess.run(["ls", "-l", "--time-style=+", folder], check=True, capture_output=True,
                             text=True).stdout
        after = metrics_at(METRICS)
        sizes = {line.split()[-1]: int(line.split()[4]) for line in out.splitlines()[1:]}
        assert sizes == {f"f{i:05d}.dat": i % 97 for i in range(FILES)}
        assert after[LOOKUPS] - before[LOOKUPS] < 10, "one lookup per entry: READDIRPLUS is not used"
        assert after[LISTS] - before[LISTS] <= 1, "the folder was listed again mid-way"
        # The kernel holds the entries now and gives them back when its caches are dropped.
        held = after["colo_fs_inodes"]
        assert held >= FILES
        deadline = time.time() + 30
        while time.time() < deadline and metrics_at(METRICS)["colo_fs_inodes"] > held - FILES / 2:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("2\n")
            time.sleep(0.5)
        assert metrics_at(METRICS)["colo_fs_inodes"] <= held - FILES / 2
        # And a second listing, after the kernel forgot them, is right again.
        assert len(os.listdir(folder)) == FILES
        assert os.stat(os.path.join(folder, "f00096.dat")).st_size == 96
    finally:
        c.stop()
