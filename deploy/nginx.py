"""An nginx front for a class: it serves Streamlit's frontend files itself and passes the rest to the app.

    python deploy/nginx.py [--listen 0.0.0.0:80] [--upstream 127.0.0.1:8501] > /etc/nginx/conf.d/lvae.conf

Why: every student's first visit downloads the frontend (about 110 files, 3 MB), and Streamlit's own
server spends ~3 ms of its one Python thread per file (185 ms per visit on the two-core development box):
40 students following a link within seconds then queue behind each other's downloads, for seconds, before
their first page runs. nginx serves the same files from Streamlit's package folder in C, with long cache
headers (their names carry content hashes), and only the app's own traffic (the websocket, /media images,
/_stcore) reaches Python. benchmarks/load_test.py --nginx measures a class through it.

`--standalone DIR` writes a whole nginx.conf that runs unprivileged from DIR (what the load test uses);
without it the output is a `server { ... }` block for a system nginx's conf.d; nginx's user (www-data)
must be able to read Streamlit's package folder (a virtual environment under /opt, not /root).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import streamlit

STATIC = Path(streamlit.__file__).resolve().parent / "static" / "static"  # served as /static/
MIME_TYPES = Path("/etc/nginx/mime.types")


def server_block(listen: str, upstream: str) -> str:
    """The `server` block: /static/ from disk, everything else (with websocket upgrade) to the app."""
    return f"""server {{
    listen {listen};
    # Streamlit's frontend bundle: content-hashed names, so browsers may keep them for a year.
    location /static/ {{
        alias {STATIC}/;
        expires 1y;
        add_header Cache-Control "public, immutable";
    }}
    location / {{
        proxy_pass http://{upstream};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_read_timeout 1d;   # a websocket stays open as long as the tab
        proxy_buffering off;
    }}
}}
"""


UPGRADE_MAP = """map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      close;
}
"""


def standalone_conf(listen: str, upstream: str, workdir: Path) -> str:
    """A complete nginx.conf that runs in the foreground as any user, with every file under workdir."""
    w = Path(workdir).resolve()
    mime = f"include {MIME_TYPES};" if MIME_TYPES.is_file() else "types { text/html html; " \
        "application/javascript js; text/css css; font/woff2 woff2; image/png png; image/svg+xml svg; }"
    # Started as root, nginx's workers would run as `nobody`, who may not read a pip install under /root.
    user = "user root;\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
daemon off;
pid {w}/nginx.pid;
error_log {w}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    {mime}
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    client_body_temp_path {w}/body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
{_indent(UPGRADE_MAP)}
{_indent(server_block(listen, upstream))}
}}
"""


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" if line else "\n" for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="0.0.0.0:80", help="where students connect (default 0.0.0.0:80)")
    ap.add_argument("--upstream", default="127.0.0.1:8501", help="the `streamlit run app.py` server")
    ap.add_argument("--standalone", type=Path, metavar="DIR", help="a whole nginx.conf running from DIR")
    args = ap.parse_args(argv)
    if not STATIC.is_dir():
        print(f"error: Streamlit's frontend files are not at {STATIC}", file=sys.stderr)
        return 2
    if args.standalone is not None:
        sys.stdout.write(standalone_conf(args.listen, args.upstream, args.standalone))
    else:
        sys.stdout.write(UPGRADE_MAP + "\n" + server_block(args.listen, args.upstream))
    return 0


if __name__ == "__main__":
    sys.exit(main())
