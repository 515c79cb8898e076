"""One storage root for every artifact: a local folder or any pyarrow filesystem URI.

Ray Train's ``RunConfig(storage_path=...)`` takes the same kind of path, so datasets,
checkpoints and reports can all live under the one root a cluster shares (NFS, s3://, gs://).
Everything here speaks in paths relative to that root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import pyarrow.fs as pafs

_HASH_CHUNK = 8 << 20


def sha256_of(stream: BinaryIO) -> str:
    """Hex sha256 of a readable binary stream, read in chunks (weights files are hundreds of MB)."""
    digest = hashlib.sha256()
    while chunk := stream.read(_HASH_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return sha256_of(f)


def _written_beside(target: Path, text: str) -> str:
    """A temporary file holding ``text`` in ``target``'s folder, to be renamed or linked there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return tmp


class Storage:
    """A storage root: read and write text, copy folders in and out, hash files."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/") if "://" in root else str(Path(root).expanduser().resolve())
        # A URI (even file://) goes through pyarrow alone, as s3:// or gs:// would on a cluster;
        # a plain path gets the local shortcuts (atomic rename, no copies when serving).
        self.is_local = "://" not in self.root
        if self.is_local:
            self.fs, self._base = pafs.LocalFileSystem(), self.root
            Path(self.root).mkdir(parents=True, exist_ok=True)
        else:
            self.fs, self._base = pafs.FileSystem.from_uri(self.root)
        # Plain paths and file:// URIs: POSIX calls (atomic rename and link) work on them.
        self._posix = isinstance(self.fs, pafs.LocalFileSystem)

    def _abs(self, rel: str) -> str:
        return f"{self._base}/{rel}".rstrip("/") if rel else self._base

    def uri(self, rel: str) -> str:
        """The full path or URI of ``rel``, as other tools (vLLM, Ray Train) accept it."""
        return f"{self.root}/{rel}" if rel else self.root

    def local_path(self, rel: str) -> Path:
        """The local filesystem path of ``rel``; only for local storage."""
        if not self.is_local:
            raise ValueError(f"storage {self.root} is not local; download {rel} first")
        return Path(self._abs(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self._abs(rel)).type != pafs.FileType.NotFound

    def list_names(self, rel: str) -> list[str]:
        """Names directly under folder ``rel``; empty when it does not exist."""
        info = self.fs.get_file_info(self._abs(rel))
        if info.type != pafs.FileType.Directory:
            return []
        selector = pafs.FileSelector(self._abs(rel), recursive=False)
        return sorted(i.base_name for i in self.fs.get_file_info(selector))

    def read_text(self, rel: str) -> str:
        with self.fs.open_input_stream(self._abs(rel)) as f:
            return f.read().decode()

    def write_text(self, rel: str, text: str, *, exclusive: bool = False) -> None:
        """Write a file whole. Locally it appears atomically (rename), so readers never see half.

        ``exclusive`` refuses to replace an existing file (FileExistsError): a compare-and-set
        on the file's absence, which the registry's version numbering relies on
        (``create_if_absent``).
        """
        if exclusive:
            self.create_if_absent(rel, text)
            return
        if self._posix:
            target = Path(self._abs(rel))
            os.replace(_written_beside(target, text), target)
            return
        self.fs.create_dir(self._abs(rel).rsplit("/", 1)[0], recursive=True)
        with self.fs.open_output_stream(self._abs(rel)) as f:
            f.write(text.encode())

    def create_if_absent(self, rel: str, text: str) -> None:
        """Create ``rel`` holding ``text`` unless it exists (then FileExistsError), atomically.

        Two writers on two nodes can race for the same name and exactly one wins:
        - POSIX paths (a local folder, ``file://``, an NFS mount): the text goes to a temporary
          file that is then hard-linked to the name. link(2) fails when the name exists, and is
          atomic on NFS as well (the classic NFS lock-file recipe), unlike O_EXCL on old NFS.
        - Object stores: fsspec's create mode, which the store's own library implements as a
          conditional write where the store has one (S3: PUT with ``If-None-Match: *``, honoured
          by S3 since 2024; GCS: ``ifGenerationMatch=0``). Without that library installed
          (s3fs, gcsfs) it falls back to check-then-write, which two writers in the same
          instant can both pass; install the library on every node of a cluster.
        """
        if self._posix:
            target = Path(self._abs(rel))
            tmp = _written_beside(target, text)
            try:
                os.link(tmp, target)
            finally:
                os.unlink(tmp)
            return
        try:
            import fsspec

            store = fsspec.filesystem(self.root.split("://", 1)[0])
        except (ImportError, ValueError):
            store = None
        if store is not None:
            store.pipe_file(self.uri(rel), text.encode(), mode="create")
            return
        if self.exists(rel):
            raise FileExistsError(self.uri(rel))
        self.write_text(rel, text)

    def upload_dir(self, local_dir: Path, rel: str) -> None:
        """Copy a local folder's contents to ``rel`` (created; existing files replaced)."""
        if self.is_local:
            shutil.copytree(local_dir, self._abs(rel), dirs_exist_ok=True)
            return
        self.fs.create_dir(self._abs(rel), recursive=True)
        pafs.copy_files(str(local_dir), self._abs(rel), destination_filesystem=self.fs)

    def download_dir(self, rel: str, local_dir: Path) -> Path:
        """Copy folder ``rel`` to a local folder (for engines that only read local files)."""
        local_dir.mkdir(parents=True, exist_ok=True)
        pafs.copy_files(self._abs(rel), str(local_dir), source_filesystem=self.fs)
        return local_dir

    def remove_file(self, rel: str) -> None:
        """Delete file ``rel`` if it exists (a lock being released)."""
        if self.exists(rel):
            self.fs.delete_file(self._abs(rel))

    def remove_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self._abs(rel))

    def file_sha256(self, rel: str) -> str:
        with self.fs.open_input_stream(self._abs(rel)) as f:
            return sha256_of(f)

    def list_files(self, rel: str) -> list[str]:
        """Every file under folder ``rel``, as paths relative to it, sorted."""
        base = self._abs(rel)
        selector = pafs.FileSelector(base, recursive=True)
        return sorted(
            i.path[len(base) + 1 :]
            for i in self.fs.get_file_info(selector)
            if i.type == pafs.FileType.File
        )
