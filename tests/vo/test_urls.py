"""Every URL colo hands out is made when it answers, from the request: the same published rows served
on two ports, and behind an nginx reverse proxy that puts the services under a path prefix, give
URLs that work where the client is. (No URL with a host in it is stored: ObsCore's access_url is a
path until a response is made.)"""
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest
import pyvo
from conftest import RUN, UP_PORT, Process

SERVE_PORT = 18771
PROXY_PORT = 18790


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def proxy(up):
    """nginx on PROXY_PORT serving `colo up` under /colo/, the way a portal or an ingress does."""
    folder = os.path.join(RUN, "url-proxy")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    config = os.path.join(folder, "nginx.conf")
    with open(config, "w") as f:
        f.write(f"""daemon off;
user root;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {folder};
  proxy_temp_path {folder};
  fastcgi_temp_path {folder};
  uwsgi_temp_path {folder};
  scgi_temp_path {folder};
  server {{
    listen 127.0.0.1:{PROXY_PORT};
    location /colo/ {{
      proxy_pass http://127.0.0.1:{UP_PORT}/;
      proxy_set_header X-Forwarded-Proto http;
      proxy_set_header X-Forwarded-Host $host:$server_port;
      proxy_set_header X-Forwarded-Prefix /colo;
      proxy_redirect off;
    }}
  }}
}}
""")
    proc = subprocess.Popen(["/usr/sbin/nginx", "-c", config, "-p", folder])
    try:
        wait_port(PROXY_PORT)
        yield f"http://127.0.0.1:{PROXY_PORT}/colo"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def obscore_access_urls(tap):
    service = pyvo.dal.TAPService(tap)
    return list(service.search("SELECT access_url FROM ivoa.obscore ORDER BY obs_publisher_did").to_table()["access_url"])


def test_urls_follow_the_port_a_client_used(up, tap):
    here = f"http://127.0.0.1:{UP_PORT}"
    urls = obscore_access_urls(tap)
    assert urls and all(u.startswith(f"{here}/datalink/links?ID=") for u in urls), urls
    # The same tables served again on another port: the same rows, URLs of that port.
    other = Process(["serve", "--listen", f"127.0.0.1:{SERVE_PORT}"], up.home, os.path.dirname(up.home))
    try:
        there = f"http://127.0.0.1:{SERVE_PORT}"
        moved = obscore_access_urls(f"{there}/tap")
        assert moved == [u.replace(here, there) for u in urls]
        with urllib.request.urlopen(moved[0]) as answer:
            links = answer.read().decode()
        assert f"{there}/datalink/download?ID=" in links and here not in links
    finally:
        other.stop()


def test_urls_work_behind_a_prefixing_proxy(proxy, up):
    urls = obscore_access_urls(f"{proxy}/tap")
    assert urls and all(u.startswith(f"{proxy}/datalink/links?ID=") for u in urls), urls
    sia = pyvo.dal.SIA2Service(f"{proxy}/sia")
    record = sia.search(pos=(272.2, -19.8, 1))[0]
    links = record.getdatalink().to_table()
    this = [u for u, s in zip(links["access_url"], links["semantics"]) if s == "#this"][0]
    assert this.startswith(f"{proxy}/datalink/download?ID=")
    with urllib.request.urlopen(this) as answer:
        assert answer.read(6) == b"SIMPLE"
    # An async job through the proxy: its URL and its result's are the proxy's.
    job = pyvo.dal.TAPService(f"{proxy}/tap").submit_job("SELECT TOP 3 hip FROM sample.hip2 ORDER BY hip")
    assert job.url.startswith(f"{proxy}/tap/async/")
    job.run().wait(phases=["COMPLETED", "ERROR"], timeout=60)
    assert len(job.fetch_result().to_table()) == 3
    assert job.result_uri.startswith(f"{proxy}/tap/async/")
    job.delete()
