"""The run store: every path of a run derived from one root URL, and atomic writes to it.

The root is a local path, `s3://bucket/prefix`, or any fsspec URL. A file appears only when it
is complete, so its existence is the completion marker: locally a file is written under a
hidden temporary name in the same folder and renamed; elsewhere the bytes are built in memory
and uploaded in one call (an S3 object appears only when its upload completes). Unit files are
bounded in size by the plan, so holding one in memory is fine.
"""

import posixpath
import uuid
from dataclasses import dataclass, field
from functools import cached_property

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.errors import StoreError
from jobs.store import layout

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class RunStore:
    """A run's root URL and how to reach it; picklable, so actors get their own copy."""

    root: str
    storage_options: dict = field(default_factory=dict, hash=False, compare=False)

    @cached_property
    def _resolved(self) -> tuple[fsspec.AbstractFileSystem, str]:
        fs, base = fsspec.core.url_to_fs(self.root, **self.storage_options)
        return fs, base.rstrip("/")

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return self._resolved[0]

    @property
    def _base(self) -> str:
        return self._resolved[1]

    def _is_local(self) -> bool:
        protocol = self.fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    # Paths, relative to the filesystem (no protocol), as fsspec methods take them; names from
    # `jobs.store.layout`, the one place that spells them.
    def path(self, *parts: str) -> str:
        return posixpath.join(self._base, *parts)

    @property
    def job_yaml(self) -> str:
        return self.path(layout.JOB_YAML)

    @property
    def problems(self) -> str:
        return self.path(layout.PROBLEMS)

    @property
    def metrics_json(self) -> str:
        return self.path(layout.METRICS_JSON)

    @property
    def progress_json(self) -> str:
        return self.path(layout.PROGRESS)

    @property
    def sweep_yaml(self) -> str:
        return self.path(layout.SWEEP_YAML)

    @property
    def report(self) -> str:
        return self.path(layout.REPORT)

    def metrics_table(self, name: str) -> str:
        return self.path(layout.metrics_table(name))

    def unit_file(self, folder: str, unit_id: str) -> str:
        return self.path(layout.unit_file(folder, unit_id))

    def sample_unit(self, unit_id: str) -> str:
        return self.unit_file(layout.SAMPLES, unit_id)

    def verdict_unit(self, verifier_key: str, unit_id: str) -> str:
        return self.unit_file(layout.verdicts(verifier_key), unit_id)

    def score_unit(self, scorer_key: str, unit_id: str) -> str:
        return self.unit_file(layout.scores(scorer_key), unit_id)

    def search_unit(self, unit_id: str) -> str:
        return self.unit_file(layout.SEARCH, unit_id)

    def keys_under(self, folder: str, pattern: str = "*") -> list[str]:
        """The sub-folder names of `folder` (verdicts/ or scores/) matching `pattern`, sorted."""
        self.fs.invalidate_cache(self.path(folder))
        return sorted(posixpath.basename(p) for p in self.fs.glob(self.path(folder, pattern)))

    def url(self, path: str) -> str:
        """A path of this store as a URL a user can paste (the protocol put back)."""
        return self.fs.unstrip_protocol(path) if not self._is_local() else path

    # Reading.
    # Other processes (the actors, an earlier run) write the files these two look for, so they
    # ask the store itself: once anything in this process has listed a folder (fs.ls), s3fs
    # answers both from that cached listing, which would hide a unit that landed after it.
    def exists(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return self.fs.exists(path)

    def unit_ids(self, folder: str) -> set[str]:
        """Ids of the complete unit files in `folder` (e.g. layout.SAMPLES or layout.verdicts(key))."""
        self.fs.invalidate_cache(self.path(folder))
        return {layout.unit_id_of(p) for p in self.fs.glob(self.path(folder, layout.UNIT_GLOB))}

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        """One Parquet file, or `columns` of it (each must exist). Read as a ParquetFile, not
        with `pq.read_table`, which goes through pyarrow.dataset: importing that (pandas with
        it) costs a process about 0.3 s of CPU at its first read, a verification worker's first
        unit included."""
        with self.fs.open(path, "rb") as file:
            parquet = pq.ParquetFile(file)
            missing = [c for c in columns or () if c not in parquet.schema_arrow.names]
            if missing:  # ParquetFile.read would leave them out without a word
                raise pa.ArrowInvalid(f"{self.url(path)} has no column {missing[0]!r}")
            return parquet.read(columns=columns)

    def read_text(self, path: str) -> str:
        return self.fs.cat_file(path).decode("utf-8")

    # Writing.
    def write_bytes(self, path: str, data: bytes) -> None:
        """`data` at `path`, visible only once complete."""
        fs = self.fs
        if self._is_local():
            folder = posixpath.dirname(path)
            fs.makedirs(folder, exist_ok=True)
            tmp = posixpath.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(path)}")
            try:
                fs.pipe_file(tmp, data)
                fs.mv(tmp, path)  # a rename within one folder: atomic on POSIX
            finally:
                if fs.exists(tmp):
                    fs.rm(tmp)
        else:
            fs.pipe_file(path, data)

    def write_table(self, path: str, table: pa.Table, schema: pa.Schema | None = None) -> None:
        """`table` as Parquet at `path`, cast to `schema` when given, visible only once complete."""
        if schema is not None:
            table = table.select(schema.names).cast(schema)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        self.write_bytes(path, sink.getvalue().to_pybytes())

    def write_text(self, path: str, text: str) -> None:
        self.write_bytes(path, text.encode("utf-8"))

    def remove_stale_temporaries(self, folder: str) -> int:
        """Temporary files left by a writer that died; safe only when no writer is running."""
        stale = self.fs.glob(self.path(folder, f"{TMP_PREFIX}*"))
        for tmp in stale:
            self.fs.rm(tmp)
        return len(stale)

    def _missing_folders(self) -> list[str]:
        """The local root and those of its parents that do not exist yet, deepest first."""
        missing, folder = [], self._base
        while self._is_local() and not self.fs.exists(folder):
            missing.append(folder)
            if posixpath.dirname(folder) == folder:
                break
            folder = posixpath.dirname(folder)
        return missing

    def check_writable(self) -> None:
        """Fail early, with the fix, when the root cannot be written."""
        probe = self.path(f"{TMP_PREFIX}probe-{uuid.uuid4().hex}")
        created = self._missing_folders()
        try:
            if self._is_local():  # an object store has no folders; its makedirs creates a missing bucket
                self.fs.makedirs(self._base, exist_ok=True)
            self.fs.pipe_file(probe, b"")
            self.fs.rm(probe)
            for folder in created:  # leave no empty run folder behind a run that fails later on
                self.fs.rmdir(folder)
        except Exception as err:  # each backend raises its own: PermissionError, ClientError, ...
            raise StoreError(
                f"run.root={self.root} is not writable ({type(err).__name__}: {err}): "
                "check the path, that the bucket exists, the endpoint and the credentials "
                "(run.storage_options, or the environment: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)"
            ) from None
