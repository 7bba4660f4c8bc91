"""A small stand-in for a Kubernetes API server and kubelet on 127.0.0.1, for `colo up` with
`[labs] backend = "kubernetes"`: it keeps the namespaces, Secrets and Pods colo creates, answers
lists and watches (JSON lines, chunked, as the API server streams them) and follows logs, and
"runs" each Pod: ContainerCreating, then running, then ready — a JupyterLab Pod with a stand-in
server on 127.0.0.2:8888 (its Pod IP) that reports what colo's proxy sent it. Deleting a Pod ends
it (MODIFIED with a deletionTimestamp, then DELETED). Not a Kubernetes: only what colo's backend
calls, so what colo sends can be checked."""
import json
import queue
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POD_IP = "127.0.0.2"
LAB_PORT = 8888


class FakeLabServer:
    """What a lab's web server would see: every request colo's proxy forwarded, with its headers."""

    def __init__(self, secret_of):
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake.requests.append((self.path, dict(self.headers)))
                body = json.dumps({"path": self.path,
                                   "secret_ok": self.headers.get("X-Colo-Lab-Secret") == secret_of()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((POD_IP, LAB_PORT), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class FakeKube:
    def __init__(self):
        self.lock = threading.Condition()
        self.version = 1
        self.namespaces = {}
        self.secrets = {}
        self.pods = {}
        self.watchers = []  # (namespace, name, queue)
        self.calls = []
        self.lab = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"null")

            def reply(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def stream(self, content_type):
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def route(self, method):
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                parts = url.path.strip("/").split("/")
                fake.calls.append((method, url.path, url.query))
                # Read whatever body came (a DELETE carries its options): the connection is reused.
                body = self.body()
                return url, query, parts, body

            def do_GET(self):
                url, query, parts, _ = self.route("GET")
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
                    ns = fake.namespaces.get(parts[3])
                    return self.reply(200, ns) if ns else self.reply(404, not_found("namespaces", parts[3]))
                if len(parts) == 5 and parts[4] == "pods":
                    name = query.get("fieldSelector", [""])[0].removeprefix("metadata.name=")
                    if query.get("watch") == ["true"]:
                        return self.watch(parts[3], name)
                    with fake.lock:
                        pod = fake.pods.get((parts[3], name))
                        items = [pod] if pod else []
                        return self.reply(200, {"kind": "PodList", "apiVersion": "v1",
                                                "metadata": {"resourceVersion": str(fake.version)},
                                                "items": items})
                if len(parts) == 7 and parts[6] == "log":
                    return self.log(parts[3], parts[5])
                self.reply(404, not_found("path", url.path))

            def watch(self, ns, name):
                q = queue.Queue()
                with fake.lock:
                    fake.watchers.append((ns, name, q))
                self.stream("application/json")
                try:
                    while True:
                        try:
                            kind, pod = q.get(timeout=1)
                        except queue.Empty:
                            continue
                        self.chunk(json.dumps({"type": kind, "object": pod}).encode() + b"\n")
                        if kind == "DELETED":
                            self.chunk(b"")
                            return
                except (BrokenPipeError, ConnectionResetError):
                    return
                finally:
                    with fake.lock:
                        fake.watchers = [w for w in fake.watchers if w[2] is not q]

            def log(self, ns, name):
                self.stream("text/plain")
                try:
                    self.chunk(f"container {name} started in {ns}\n".encode())
                    while True:
                        with fake.lock:
                            pod = fake.pods.get((ns, name))
                            if not pod or pod["metadata"].get("deletionTimestamp"):
                                break
                            fake.lock.wait(0.2)
                    self.chunk(b"container stopping\n")
                    self.chunk(b"")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_POST(self):
                url, _, parts, obj = self.route("POST")
                with fake.lock:
                    fake.version += 1
                    obj.setdefault("metadata", {})["resourceVersion"] = str(fake.version)
                    if parts == ["api", "v1", "namespaces"]:
                        fake.namespaces[obj["metadata"]["name"]] = obj
                    elif len(parts) == 5 and parts[4] == "secrets":
                        fake.secrets[(parts[3], obj["metadata"]["name"])] = obj
                    elif len(parts) == 5 and parts[4] == "pods":
                        key = (parts[3], obj["metadata"]["name"])
                        if key in fake.pods:
                            return self.reply(409, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                    "reason": "AlreadyExists", "code": 409, "message": "exists"})
                        fake.pods[key] = obj
                        threading.Thread(target=fake.kubelet, args=(key,), daemon=True).start()
                    else:
                        return self.reply(404, not_found("path", url.path))
                self.reply(201, obj)

            def do_DELETE(self):
                url, _, parts, _ = self.route("DELETE")
                key = (parts[3], parts[5]) if len(parts) == 6 else None
                with fake.lock:
                    if parts[4:5] == ["secrets"]:
                        gone = fake.secrets.pop(key, None)
                        return self.reply(200, gone) if gone else self.reply(404, not_found("secrets", parts[5]))
                    pod = fake.pods.get(key)
                    if not pod:
                        return self.reply(404, not_found("pods", parts[5]))
                    pod["metadata"]["deletionTimestamp"] = "2026-12-07T00:00:00Z"
                    fake.changed(key, "MODIFIED")
                    fake.lock.notify_all()
                threading.Thread(target=fake.remove, args=(key,), daemon=True).start()
                self.reply(200, pod)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def secret_value(self):
        with self.lock:
            for s in self.secrets.values():
                return s.get("stringData", {}).get("COLO_LAB_SECRET")

    def changed(self, key, kind):
        """Sends the Pod's new state to its watchers (called holding the lock)."""
        self.version += 1
        pod = self.pods[key]
        pod["metadata"]["resourceVersion"] = str(self.version)
        for ns, name, q in self.watchers:
            if (ns, name) == key:
                q.put((kind, json.loads(json.dumps(pod))))

    def set_status(self, key, status):
        with self.lock:
            pod = self.pods.get(key)
            if not pod or pod["metadata"].get("deletionTimestamp"):
                return False
            pod["spec"]["nodeName"] = "fake-node"
            pod["status"] = status
            self.changed(key, "MODIFIED")
            return True

    def kubelet(self, key):
        """What a node would do with the Pod, a step at a time."""
        container = lambda ready, state: [{"name": "lab", "image": "x", "imageID": "", "ready": ready,
                                           "restartCount": 0, "state": state}]
        time.sleep(0.3)
        if not self.set_status(key, {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}],
                                     "containerStatuses": container(False, {"waiting": {"reason": "ContainerCreating"}})}):
            return
        time.sleep(0.3)
        running = {"running": {"startedAt": "2026-12-07T00:00:00Z"}}
        if not self.set_status(key, {"phase": "Running", "podIP": POD_IP,
                                     "containerStatuses": container(False, running)}):
            return
        ports = self.pods[key]["spec"]["containers"][0].get("ports")
        if ports and self.lab is None:
            self.lab = FakeLabServer(self.secret_value)
        time.sleep(0.3)
        self.set_status(key, {"phase": "Running", "podIP": POD_IP,
                              "conditions": [{"type": "Ready", "status": "True"}],
                              "containerStatuses": container(True, running)})

    def remove(self, key):
        time.sleep(0.3)
        with self.lock:
            if key in self.pods:
                self.changed(key, "DELETED")
                del self.pods[key]
            self.lock.notify_all()

    def kubeconfig(self, path):
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))
        return str(path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        if self.lab:
            self.lab.close()


def not_found(kind, name):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
            "message": f'{kind} "{name}" not found'}
