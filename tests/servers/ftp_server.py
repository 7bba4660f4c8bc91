"""FTP server for colo's tests (pyftpdlib), loopback only, passive ports in a fixed range: USER
reads ROOT; USER-rw (same password) reads and writes RW_ROOT.

usage: ftp_server.py ROOT PORT USER PASSWORD PASV_FIRST PASV_LAST RW_ROOT
"""
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

root, port, user, password, first, last, rw_root = sys.argv[1:8]
auth = DummyAuthorizer()
auth.add_user(user, password, root, perm="elr")  # list and read only
auth.add_user(f"{user}-rw", password, rw_root, perm="elradfmwMT")  # and write, rename, delete
handler = FTPHandler
handler.authorizer = auth
handler.passive_ports = range(int(first), int(last) + 1)
handler.masquerade_address = "127.0.0.1"
server = FTPServer(("127.0.0.1", int(port)), handler)
server.max_cons = 256
server.serve_forever()
