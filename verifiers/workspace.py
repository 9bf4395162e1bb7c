"""Workspaces for the patch verifier: each instance's repository at its base commit, prepared once
per worker and reused by every candidate of that instance.

Sources (problem columns): `workspace`, a local directory (used in place, read-only) or a
`.tar` / `.tar.gz` / `.tgz` archive at a local path or any fsspec URL (unpacked once; an archive
holding a single top-level folder is that folder); or SWE-bench's `repo` and `base_commit` with
`verify.repos=DIR` holding clones named `owner__name` (the commit's tree, by `git archive`).
The problem set is trusted input (the candidates are not): archives still go through tarfile's
`data` filter, so no member lands outside its folder.
"""

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections import OrderedDict

ARCHIVES = (".tar", ".tar.gz", ".tgz")
# Unpacked workspaces a worker keeps (least recently used first out): a unit's samples are
# grouped by problem, so each instance is prepared about once per unit at worst.
KEEP = 16


class WorkspaceError(Exception):
    """The instance's environment could not be prepared (the verdict is `error`, not `fail`)."""


class Workspaces:
    def __init__(self, repos: str | None = None, keep: int = KEEP):
        self.repos, self.keep = repos, keep
        self.folder = tempfile.mkdtemp(prefix="troop-workspaces-")
        self._ready: OrderedDict[str, str] = OrderedDict()
        self.prepared = 0  # how many were unpacked or exported (tests, benches)

    def prepare(self, payload: dict) -> str:
        """The local folder holding the instance's workspace."""
        source = payload.get("workspace")
        if source is None and not (payload.get("repo") and payload.get("base_commit")):
            raise WorkspaceError("the problem has neither `workspace` nor `repo` and `base_commit`")
        if source is not None and "://" not in str(source) and os.path.isdir(source):
            return os.path.realpath(source)
        key = hashlib.sha256(repr((source, payload.get("repo"), payload.get("base_commit"))).encode()).hexdigest()[:16]
        if key in self._ready:
            self._ready.move_to_end(key)
            return self._ready[key]
        target = os.path.join(self.folder, key)
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        try:
            if source is not None:
                _unpack(str(source), target)
            else:
                self._export(payload["repo"], payload["base_commit"], target)
        except WorkspaceError:
            shutil.rmtree(target, ignore_errors=True)
            raise
        self.prepared += 1
        self._ready[key] = _single_folder(target)
        while len(self._ready) > self.keep:
            _, old = self._ready.popitem(last=False)
            shutil.rmtree(old if os.path.dirname(old) == self.folder else os.path.dirname(old), ignore_errors=True)
        return self._ready[key]

    def _export(self, repo: str, commit: str, target: str) -> None:
        if not self.repos:
            raise WorkspaceError(f"repo {repo}: set verify.repos=DIR with a clone named {repo.replace('/', '__')}")
        clone = os.path.join(self.repos, repo.replace("/", "__"))
        if not os.path.isdir(clone):
            raise WorkspaceError(f"repo {repo}: no clone at {clone}")
        done = subprocess.run(["git", "-c", "safe.directory=*", "-C", clone, "archive", "--format=tar", commit],
                              capture_output=True)
        if done.returncode != 0:
            raise WorkspaceError(f"repo {repo} at {commit}: {done.stderr.decode(errors='replace').strip()[-200:]}")
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
            archive.extractall(target, filter="data")

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self._ready.clear()


def _unpack(source: str, target: str) -> None:
    import fsspec

    if not source.endswith(ARCHIVES):
        raise WorkspaceError(f"workspace {source}: neither a local folder nor a {', '.join(ARCHIVES)} archive")
    try:
        with fsspec.open(source, "rb") as f, tarfile.open(fileobj=f, mode="r:*") as archive:
            archive.extractall(target, filter="data")
    except (OSError, tarfile.TarError) as err:
        raise WorkspaceError(f"workspace {source}: {type(err).__name__}: {err}") from None


def _single_folder(target: str) -> str:
    """An archive of `repo/...` is the folder `repo`."""
    entries = os.listdir(target)
    only = os.path.join(target, entries[0]) if len(entries) == 1 else None
    return only if only and os.path.isdir(only) and not os.path.islink(only) else target
