"""The emulator's state on disk: what the local stack restores when it starts again.

A snapshot holds three of the emulator's services, as moto keeps them: S3 (buckets, every version of every
object with its version id, delete markers, metadata), DynamoDB (tables and items) and SQS (queues and their
messages, with receive counts). Everything else is provisioned again at every start, from the same
definitions.

- **Consistent.** A snapshot is taken with every request to the emulator held back (requests run shared,
  the snapshot exclusive), so it never holds a processor's partials without the message it deleted, or the
  reverse. It is written to new files, then one small manifest names them (an atomic rename): a crash
  during a save leaves the previous snapshot whole.
- **Cheap when idle, incremental for objects.** Only the services that received a write since the last
  save are written again. Object bytes go to one file per object version, written once: versions never
  change, so a 1 GiB object is copied once, not at every save.
- **Versioned.** The manifest names its layout and the moto version that wrote it; a snapshot of another
  layout or moto version is refused with a message saying what to run, never misread.

Restoring puts the objects back as they were (same version ids, hence the same ingestion ids) without any
S3 event: nothing is delivered or ingested again. Messages that were in flight become visible again, as
their visibility timeout would have made them in AWS.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import moto
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import FakeKey

from . import persistence_dynamodb as dynamodb_state

LAYOUT = 2
MANIFEST = "manifest.json"
LOCK = "lock"
BLOBS = "objects"
# (moto service, the backend key: S3's backend is per partition, the others per region)
SERVICES = ("s3", "dynamodb", "sqs")
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_COPY_CHUNK = 8 * 1024 * 1024
# However long saves take, one comes at least this often (bounds what a crash of the emulator can lose).
MAX_SAVE_INTERVAL_S = 30.0


@dataclass(frozen=True)
class Captured:
    """One service as a snapshot took it: ``whole`` (a new file) or ``changes`` (appended to its journal)."""

    kind: str
    data: bytes
    objects: set[str]
    items: int


class StateRefused(Exception):
    """The state folder holds a snapshot this emulator cannot read."""


class SharedExclusiveLock:
    """Many requests at once (shared), or one snapshot alone (exclusive); a waiting snapshot goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._local = threading.local()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    def _enter_shared(self) -> None:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
            self._shared += 1
        self._local.held = True

    def _leave_shared(self) -> None:
        self._local.held = False
        with self._cond:
            self._shared -= 1
            self._cond.notify_all()

    @contextmanager
    def shared(self) -> Iterator[None]:
        self._enter_shared()
        try:
            yield
        finally:
            self._leave_shared()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the shared section while this thread only waits (an SQS long poll), so that a snapshot need not
        wait for it, nor every other request behind the snapshot."""
        held = getattr(self._local, "held", False)
        if held:
            self._leave_shared()
        try:
            yield
        finally:
            if held:
                self._enter_shared()

    def hold(self) -> None:
        """Take the lock exclusively, for good: the process is about to exit."""
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True

    def release(self) -> None:
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        self.hold()
        try:
            yield
        finally:
            self.release()


def _fresh_lock(kind: str) -> Any:
    return threading.RLock() if kind == "rlock" else threading.Lock()


def _fresh_condition() -> threading.Condition:
    return threading.Condition()


def _rebuild_dict(cls: type[dict[Any, Any]], items: list[tuple[Any, Any]], attributes: dict[str, Any]) -> Any:
    made: Any = dict.__new__(cls)
    for key, value in items:
        dict.__setitem__(made, key, value)
    made.__dict__.update(attributes)
    return made


def _blob_name(key: FakeKey) -> str:
    identity = "\0".join(str(part) for part in (
        key.bucket_name, key.name, key._version_id, key._etag, key.last_modified.isoformat(),
        getattr(key, "contentsize", 0)))
    return hashlib.sha256(identity.encode()).hexdigest()


class _Pickler(pickle.Pickler):
    """Pickles a moto backend; object bytes go to blob files (written once), locks are made again on load."""

    def __init__(self, file: io.BytesIO, blobs: Path, referenced: set[str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._blobs = blobs
        self._referenced = referenced

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, FakeKey):
            return None
        state = {k: v for k, v in obj.__dict__.items() if k not in ("_value_buffer", "lock")}
        name = _blob_name(obj)
        path = self._blobs / name
        if not path.exists() and not obj.disposed:
            partial = path.with_suffix(".partial")
            with obj.lock, open(partial, "wb") as out:
                obj._value_buffer.seek(0)
                shutil.copyfileobj(obj._value_buffer, out, _COPY_CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, path)
        self._referenced.add(name)
        return ("s3-object", type(obj), state, name)

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, _LOCK_TYPES):
            return _fresh_lock, ("rlock" if isinstance(obj, type(threading.RLock())) else "lock",)
        if isinstance(obj, threading.Condition):
            return _fresh_condition, ()
        if isinstance(obj, dict) and type(obj).__module__.startswith("moto."):
            # moto's dict subclasses redefine __setitem__ (S3's version store appends to a key's versions), which
            # pickle calls on load: store and restore the raw entries instead.
            return _rebuild_dict, (type(obj), list(dict.items(obj)), dict(getattr(obj, "__dict__", {})))
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedReader, blobs: Path) -> None:
        super().__init__(file)
        self._blobs = blobs

    def persistent_load(self, pid: Any) -> Any:
        kind, cls, state, name = pid
        if kind != "s3-object":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        key = cls.__new__(cls)
        key.__dict__.update(state)
        key.lock = threading.Lock()
        key._value_buffer = tempfile.SpooledTemporaryFile(max_size=key._max_buffer_size)  # noqa: SIM115 - the key owns it
        path = self._blobs / name
        if not key.disposed:
            if not path.exists():
                raise StateRefused(f"the state names object bytes {path} that are missing; start with --fresh "
                                   "to begin empty (the old state is moved aside)")
            with open(path, "rb") as blob:
                shutil.copyfileobj(blob, key._value_buffer, _COPY_CHUNK)
        return key


def _backend_slot(service: str, region: str) -> tuple[Any, str]:
    """The per-account dict that holds the service's backend, and the key of the one the stack uses."""
    accounts = get_backend(service)  # type: ignore[call-overload]
    account = accounts[DEFAULT_ACCOUNT_ID]
    return account, ("aws" if service == "s3" else region)


def moto_version() -> str:
    return str(moto.__version__)


class StateStore:
    """One stage's snapshot folder: load it at start, save it while running and at the stop."""

    def __init__(self, directory: Path, region: str,
                 tracker: dynamodb_state.ChangeTracker | None = None) -> None:
        self.directory = directory
        self.region = region
        self.tracker = tracker
        self._blobs = directory / BLOBS
        self._generation = 0
        self._files: dict[str, dict[str, Any]] = {}

    def lock_folder(self) -> None:
        """Own the folder for as long as this process lives: a second stack on the same folder would overwrite
        this one's files and delete the ones it still names."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.directory / LOCK, "a+")  # noqa: SIM115 - held until the process exits
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "another process"
            raise StateRefused(f"{self.directory} is in use by another local stack (pid {holder}); stop it, or give "
                               "this one another folder (--state-dir DIR) or none (--ephemeral)") from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    # ------------------------------------------------------------------ reading
    def manifest(self) -> dict[str, Any] | None:
        path = self.directory / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StateRefused(f"{path} cannot be read ({exc}); start with --fresh to begin empty") from exc
        layout, version = manifest.get("layout"), manifest.get("moto")
        if layout != LAYOUT or version != moto_version():
            raise StateRefused(
                f"{self.directory} holds state of another layout (layout {layout}, moto {version}; this emulator "
                f"reads layout {LAYOUT}, moto {moto_version()}). Start with --fresh to begin empty "
                f"(the old state is moved aside, not deleted).")
        return manifest

    def load(self) -> dict[str, int]:
        """Put the saved services back into this process's moto; returns what was restored, by service."""
        manifest = self.manifest()
        if manifest is None:
            return {}
        try:
            return self._load(manifest)
        except (OSError, EOFError, KeyError, ValueError, pickle.UnpicklingError) as exc:
            raise StateRefused(f"{self.directory} cannot be restored ({exc!r}); start with --fresh to begin empty "
                               "(the old state is moved aside, not deleted)") from exc

    def _load(self, manifest: dict[str, Any]) -> dict[str, int]:
        restored: dict[str, int] = {}
        self._generation = int(manifest["generation"])
        for service, entry in manifest["services"].items():
            if service == "dynamodb":
                journal = self.directory / entry["journal"] if entry.get("journal") else None
                backend, count = dynamodb_state.restore(
                    (self.directory / entry["file"]).read_bytes(), journal, int(entry.get("journal_bytes", 0)),
                    lambda data: _Unpickler(data, self._blobs).load())  # type: ignore[arg-type]
                entry = {**entry, "items": count}
            else:
                with open(self.directory / entry["file"], "rb") as file:
                    backend = _Unpickler(file, self._blobs).load()  # type: ignore[arg-type]
            account, slot = _backend_slot(service, self.region)
            account[slot] = backend
            _after_restore(service, backend)
            self._files[service] = entry
            restored[service] = entry.get("items", 0)
        return restored

    # ------------------------------------------------------------------ writing
    def capture(self, services: set[str]) -> dict[str, Captured]:
        """The given services as they are now (call with every request held back). DynamoDB is captured as the
        items that changed when the tracker can say which, else whole."""
        self._blobs.mkdir(parents=True, exist_ok=True)
        out: dict[str, Captured] = {}
        for service in services:
            account, slot = _backend_slot(service, self.region)
            backend = account[slot]
            if service == "dynamodb":
                out[service] = self._capture_dynamodb(backend)
                continue
            referenced: set[str] = set()
            out[service] = Captured("whole", self._pickle(backend, referenced), referenced, _count(service, backend))
        return out

    def _pickle(self, backend: Any, referenced: set[str]) -> bytes:
        buffer = io.BytesIO()
        _Pickler(buffer, self._blobs, referenced).dump(backend)
        return buffer.getvalue()

    def _capture_dynamodb(self, backend: Any) -> Captured:
        whole, changed = (True, {}) if self.tracker is None else self.tracker.take()
        entry = self._files.get("dynamodb")
        if entry is not None and not whole:
            base_bytes = int(entry.get("base_bytes", 0))
            if int(entry.get("journal_bytes", 0)) <= max(base_bytes, dynamodb_state.COMPACT_MIN_BYTES):
                changes = dynamodb_state.capture_changes(backend, changed)
                return Captured("changes", dynamodb_state.frame(changes) if changes else b"", set(),
                                int(entry.get("items", 0)))
        data, count = dynamodb_state.capture_base(backend, lambda b: self._pickle(b, set()))
        return Captured("whole", data, set(), count)

    def write(self, captured: dict[str, Captured]) -> None:
        """Write captured services as a new generation, then switch the manifest to it atomically."""
        captured = {k: v for k, v in captured.items() if v.kind == "whole" or v.data}
        if not captured:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._generation += 1
        files = dict(self._files)
        for service, part in captured.items():
            if part.kind == "changes":
                entry = dict(files[service])
                entry["journal_bytes"] = dynamodb_state.append(self.directory / entry["journal"], part.data,
                                                               int(entry["journal_bytes"]))
                files[service] = entry
                continue
            name = f"{service}-{self._generation}.pickle"
            _write_atomic(self.directory / name, part.data)
            entry = {"file": name, "objects": sorted(part.objects), "items": part.items}
            if service == "dynamodb":
                entry.update(journal=f"{service}-{self._generation}.journal", journal_bytes=0,
                             base_bytes=len(part.data))
            files[service] = entry
        manifest = {"layout": LAYOUT, "moto": moto_version(), "generation": self._generation,
                    "saved_at": time.time(), "services": files}
        _write_atomic(self.directory / MANIFEST, json.dumps(manifest, indent=1).encode())
        self._files = files
        self._collect()

    def _collect(self) -> None:
        """Delete the pickles and object files the manifest no longer names."""
        keep = ({entry["file"] for entry in self._files.values()}
                | {entry["journal"] for entry in self._files.values() if "journal" in entry} | {MANIFEST, LOCK})
        for path in [*self.directory.glob("*.pickle"), *self.directory.glob("*.journal")]:
            if path.name not in keep:
                path.unlink(missing_ok=True)
        blobs = {name for entry in self._files.values() for name in entry.get("objects", ())}
        if self._blobs.exists():
            for path in self._blobs.iterdir():
                if path.name not in blobs:
                    path.unlink(missing_ok=True)


def _after_restore(service: str, backend: Any) -> None:
    if service == "s3":
        # moto finds a bucket's owner through an index beside the backends: the buckets are ours again.
        accounts: Any = get_backend("s3")
        for name in backend.buckets:
            accounts.bucket_accounts[name] = ("aws", DEFAULT_ACCOUNT_ID)
    elif service == "sqs":
        # In flight when the stack stopped: nobody holds them now, so they are delivered again at once.
        for queue in backend.queues.values():
            for message in queue._messages:
                message.visible_at = 0.0


def _count(service: str, backend: Any) -> int:
    """A size for the log: object versions, items or messages."""
    try:
        if service == "s3":
            return sum(len(versions) for bucket in backend.buckets.values()
                       for _, versions in bucket.keys.iterlists())
        if service == "dynamodb":
            return sum(sum(1 for _ in table.all_items()) for table in backend.tables.values())
        if service == "sqs":
            return sum(len(queue._messages) for queue in backend.queues.values())
    except Exception:  # a count for a log line must never stop a save
        return 0
    return 0


def _write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, path)


def move_aside(directory: Path) -> Path | None:
    """--fresh: keep the old state beside, under a dated name, and start from an empty folder."""
    if not directory.exists() or not any(directory.iterdir()):
        return None
    target = directory.with_name(f"{directory.name}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    directory.rename(target)
    return target


class Saver:
    """Saves the services that changed, every ``interval`` seconds, spending at most about a tenth of the time
    saving (a big table is saved less often), and once more at the stop."""

    def __init__(self, store: StateStore, lock: SharedExclusiveLock, interval: float,
                 log: Callable[[str], None]) -> None:
        self.store = store
        self.lock = lock
        self.interval = interval
        self._log = log
        self._dirty: set[str] = set()
        self._dirty_lock = threading.Lock()
        self._stop = threading.Event()
        self._save_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="state-saver", daemon=True)
        self.last_seconds = 0.0

    def mark(self, service: str) -> None:
        with self._dirty_lock:
            self._dirty.add(service)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.save()
            except Exception as exc:  # keep saving later; say why now
                self._log(f"saving the local state failed: {exc!r}")
            wait = min(max(self.interval, 9 * self.last_seconds), MAX_SAVE_INTERVAL_S)

    def save(self, final: bool = False) -> None:
        """Save what changed. If anything fails, what was taken for this save is given back, so the next save
        writes it (DynamoDB whole, since the changed keys were handed over)."""
        with self._save_lock:
            self.lock.hold()
            started = time.monotonic()  # the save's own time, not the wait for requests to finish
            services: set[str] = set()
            try:
                with self._dirty_lock:
                    services, self._dirty = self._dirty, set()
                captured = self.store.capture(services & set(SERVICES))
            except BaseException:
                self._give_back(services)
                raise
            finally:
                if not final:
                    self.lock.release()
            try:
                self.store.write(captured)
            except BaseException:
                self._give_back(services)
                raise
            self.last_seconds = time.monotonic() - started

    def _give_back(self, services: set[str]) -> None:
        with self._dirty_lock:
            self._dirty |= services
        if "dynamodb" in services and self.store.tracker is not None:
            self.store.tracker.note_whole()

    def stop(self) -> None:
        """Save what changed and stop saving. Requests that arrive afterwards wait for good: call this only
        when the process is about to exit."""
        self._stop.set()
        self.save(final=True)
