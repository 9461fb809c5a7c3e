"""A stand-in of the Hugging Face Hub's HTTP API on 127.0.0.1, for tests that download by Hub id.

It speaks the part of the API that huggingface_hub's downloads use (HF_ENDPOINT=<server.url>):

    GET  /api/models/<repo>[/revision/<rev>]      repo info: sha and file list (model_info, repo_info)
    GET  /api/models/<repo>/tree/<rev>[/<path>]   recursive file listing (snapshot_download)
    HEAD /<repo>/resolve/<rev>/<file>             file metadata: X-Repo-Commit, ETag, Content-Length
    GET  /<repo>/resolve/<rev>/<file>             the file (with Range)

Unknown repos, revisions and files answer 404 with the X-Error-Code the Hub sends (RepoNotFound,
RevisionNotFound, EntryNotFound), so huggingface_hub raises its usual errors. Every request is recorded.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
TREE = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?$")
RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class Repo:
    """The files of one folder, served as a model repo at one commit."""

    def __init__(self, folder: Path) -> None:
        self.files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        self.sha = hashlib.sha1("\n".join(self.files).encode() + str(folder).encode()).hexdigest()
        self._etags: dict[str, str] = {}

    def etag(self, name: str) -> str:
        if name not in self._etags:
            self._etags[name] = hashlib.sha256(self.files[name].read_bytes()).hexdigest()
        return self._etags[name]


class HubServer:
    """`with HubServer({"owner/name": folder}) as hub:` serves the folders at hub.url; hub.requests lists
    (method, path) of every request."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo_id: Repo(Path(folder)) for repo_id, folder in repos.items()}
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                for pattern, answer in ((INFO, self._info), (TREE, self._tree), (RESOLVE, self._file)):
                    match = pattern.match(path)
                    if match:
                        repo = hub.repos.get(match["repo"])
                        if repo is None:
                            return self._error(404, "RepoNotFound", f"Repository {match['repo']} not found")
                        if match["rev"] not in (None, "main", repo.sha):
                            return self._error(404, "RevisionNotFound", f"Invalid rev id: {match['rev']}")
                        return answer(repo, match, body)
                self._error(404, None, f"no such endpoint: {path}")

            def _info(self, repo: Repo, match, body: bool) -> None:
                info = {"id": match["repo"], "modelId": match["repo"], "sha": repo.sha, "private": False,
                        "siblings": [{"rfilename": name} for name in repo.files]}
                self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)

            def _tree(self, repo: Repo, match, body: bool) -> None:
                prefix = (match["path"] or "").strip("/")
                entries = [{"type": "file", "path": name, "size": p.stat().st_size, "oid": repo.etag(name)[:40]}
                           for name, p in repo.files.items() if not prefix or name.startswith(prefix + "/")]
                self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, body)

            def _file(self, repo: Repo, match, body: bool) -> None:
                name = match["path"]
                if name not in repo.files:
                    return self._error(404, "EntryNotFound", f"{name} not found in {match['repo']}",
                                       {"X-Repo-Commit": repo.sha})
                data = repo.files[name].read_bytes()
                status, start = 200, 0
                ranged = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
                if ranged and body:
                    start = int(ranged[1])
                    end = int(ranged[2]) + 1 if ranged[2] else len(data)
                    data, status = data[start:end], 206
                headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{repo.etag(name)}"',
                           "Content-Type": "application/octet-stream"}
                self._send(status, data, headers, body)

            def _error(self, status: int, code: str | None, message: str, headers: dict | None = None) -> None:
                headers = {**(headers or {}), "Content-Type": "application/json"}
                if code:
                    headers.update({"X-Error-Code": code, "X-Error-Message": message})
                self._send(status, json.dumps({"error": message}).encode(), headers, True)

            def _send(self, status: int, data: bytes, headers: dict, body: bool) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler
