"""Derives tests/posix/subset-*.list from a pjdfstest tree (the rule is in each list's header).

usage: derive_subsets.py PJDFSTEST_TESTS_DIR OUT_DIR
"""
import os
import re
import sys

tests, out = sys.argv[1:3]
files = sorted(os.path.relpath(os.path.join(d, f), tests)
               for d, _, fs in os.walk(tests) for f in fs if f.endswith(".t"))


def text(f):
    return open(os.path.join(tests, f), errors="replace").read()


SPECIAL = r"\bfifo\b|mkfifo|mknod|\bblock\b|\bchar\b|\bsocket\b|bind |ENAMETOOLONG|NAME_MAX|name_max|namegen_max|01777|sticky"
METADATA = r"\bchmod\b|\bchown\b|\blchown\b|\bsymlink\b|\blink\b|\bln -s\b|-u \d+|-g \d+"
hf = [f for f in files if f.split("/")[0] not in ("mkfifo", "mknod", "link")
      and not re.search(SPECIAL, text(f))]
store = [f for f in hf if f.split("/")[0] not in ("chmod", "chown", "symlink", "link")
         and not re.search(METADATA, text(f))]
for name, chosen in (("hf", hf), ("object-store", store)):
    with open(os.path.join(out, f"subset-{name}.list.derived"), "w") as f:
        f.write("\n".join(chosen) + "\n")
    print(f"subset-{name}: {len(chosen)} files")
