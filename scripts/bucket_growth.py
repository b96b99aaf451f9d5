"""What one big object in the bucket costs the local stack while many small files are ingested.

Starts the local stack (free ports, a TMPDIR of its own), puts one object of --big-mib MiB in the bucket, then
uploads --uploads small CSV files of --ticks ticks each (S3 PutObject) and waits until every one of their ticks
is in a 1m bar. All along it samples the emulator process (`python -m localrun.emulator`): its RSS, the disk
held by its temporary files, and the bytes it wrote to storage. moto keeps every object larger than ~5 MiB in
a temporary file (a SpooledTemporaryFile, unlinked at once, so `du` does not see it: the files are found
through /proc/<pid>/fd), and any request that copies objects writes their bytes again. Finding which version
of a key is current, once per ingestion and once per file source per aggregation, must cost the same whatever
else the bucket holds; these figures show whether it does.

The big object is a `.bin` key and the stack runs with MAX_OBJECT_BYTES just below its size, so DataIngestion
rejects it after HeadObject, without reading it: a 1 GiB CSV would be ingested (the backfill scenario of
scripts/bench.py measures that), and the object is only there to weigh on the bucket.

Printed per phase (the big upload, then the small uploads until their bars are ready): seconds, the emulator's
peak RSS (the kernel's high-water mark, reset at the start of the phase) and its RSS at the end, the peak disk
held by temporary files, and the bytes the emulator wrote to storage. Everything it created is deleted at the
end: the objects (by version id), the stack (its state is in memory), the temporary directory.

Usage: python scripts/bucket_growth.py [--big-mib 1024] [--uploads 500] [--ticks 3]   (make bench-bucket)
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import boto3  # noqa: E402

from chalicelib.adapters.dynamodb import DynamoStateStore  # noqa: E402
from chalicelib.domain.ingestion import Status, object_ingestion_id, real_version  # noqa: E402
from chalicelib.settings import Settings, resource_names  # noqa: E402
from localrun.control import AWS_ENV, LocalStack, running_local_stack, unique_symbol, wait_for  # noqa: E402
from localrun.provision import events_queue_name  # noqa: E402

MIB = 1 << 20
BASE_S = 1_719_792_000  # 2024-07-01T00:00:00Z: the ticks' first minute
PATTERN = b"".join(f"{i:09d},blob\n".encode() for i in range(MIB // 15 + 1))[:MIB]  # the big object's bytes


class SyntheticObject(io.RawIOBase):
    """``size`` bytes of a repeated pattern, read and sought like a file but never held whole."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, min(self._size, base + offset))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos)
        done = 0
        while done < n:
            start = (self._pos + done) % len(PATTERN)
            take = min(n - done, len(PATTERN) - start)
            view[done : done + take] = PATTERN[start : start + take]
            done += take
        self._pos += n
        return n


# ------------------------------------------------------------------------------------ the emulator process


def emulator_pid(stack: LocalStack) -> int:
    """The `python -m localrun.emulator` child of this stack's `python -m localrun`."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            parent = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == stack.process.pid and argv[1:3] == [b"-m", b"localrun.emulator"]:
            return int(entry)
    raise RuntimeError("the emulator process of the local stack was not found")


def status_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} in /proc/{pid}/status")


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of the process; False when the kernel does not allow it."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def written_bytes(pid: int) -> int:
    """Bytes the process sent (or will send) to storage, less those truncated away before writeback."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["write_bytes"]) - int(fields["cancelled_write_bytes"])


def temp_disk_bytes(pid: int, tmpdir: str) -> int:
    """Disk blocks held by files in ``tmpdir``: those the process holds open (unlinked ones included) and any
    still named there."""
    seen: dict[tuple[int, int], int] = {}
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        fds = []
    for fd in fds:
        try:
            if not os.readlink(f"{fd_dir}/{fd}").startswith(tmpdir):
                continue
            st = os.stat(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed meanwhile
        seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    for folder, _, files in os.walk(tmpdir):
        for name in files:
            try:
                st = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            seen[(st.st_dev, st.st_ino)] = st.st_blocks * 512
    return sum(seen.values())


@dataclass
class Phase:
    name: str
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    written_at_start: int = 0
    written: int = 0
    rss_at_start_kib: int = 0
    rss_end_kib: int = 0
    peak_rss_kib: int = 0  # VmHWM when it could be reset, else the highest sample
    peak_temp_bytes: int = 0
    samples: int = 0


class Sampler:
    """Samples the emulator every ``interval`` seconds, into the phase under way."""

    def __init__(self, pid: int, tmpdir: str, interval: float) -> None:
        self.pid = pid
        self.tmpdir = tmpdir
        self.interval = interval
        self.phases: list[Phase] = []  # ended ones, in order
        self.hwm_resettable = True
        self._current: Phase | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def begin(self, name: str) -> Phase:
        with self._lock:
            self.hwm_resettable = reset_peak_rss(self.pid) and self.hwm_resettable
            rss = status_kib(self.pid, "VmRSS")
            self._current = Phase(name, written_at_start=written_bytes(self.pid), rss_at_start_kib=rss,
                                  peak_rss_kib=rss)
        self._sample()
        return self._current

    def end(self, phase: Phase) -> None:
        self._sample()
        with self._lock:
            phase.seconds = time.monotonic() - phase.started
            phase.written = written_bytes(self.pid) - phase.written_at_start
            phase.rss_end_kib = status_kib(self.pid, "VmRSS")
            if self.hwm_resettable:
                phase.peak_rss_kib = max(phase.peak_rss_kib, status_kib(self.pid, "VmHWM"))
            self.phases.append(phase)
            self._current = None

    def _sample(self) -> None:
        try:
            rss = status_kib(self.pid, "VmRSS")
            temp = temp_disk_bytes(self.pid, self.tmpdir)
        except (OSError, RuntimeError):
            return  # the process is stopping
        with self._lock:
            phase = self._current
            if phase is None:
                return
            phase.samples += 1
            phase.peak_rss_kib = max(phase.peak_rss_kib, rss)
            phase.peak_temp_bytes = max(phase.peak_temp_bytes, temp)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()


# ------------------------------------------------------------------------------------------------ the run


def small_csv(symbol: str, file_number: int, ticks: int) -> bytes:
    """Ticks of one file, one per minute: file i holds minutes [i * ticks, (i + 1) * ticks)."""
    rows = []
    for j in range(ticks):
        minute = file_number * ticks + j
        rows.append(f"{symbol},{100 + minute % 50}.25,1,{BASE_S + minute * 60 + 1}\n")
    return ("symbol,price,volume,timestamp\n" + "".join(rows)).encode()


def print_phase(phase: Phase, hwm: bool) -> None:
    peak = "peak RSS" if hwm else "peak RSS (sampled)"
    print(f"  {phase.name:<28} {phase.seconds:8.1f} s   {peak} {phase.peak_rss_kib / 1024:8.0f} MiB "
          f"(start {phase.rss_at_start_kib / 1024:.0f}, end {phase.rss_end_kib / 1024:.0f})   "
          f"peak temp disk {phase.peak_temp_bytes / MIB:8.0f} MiB   written {phase.written / MIB:9.0f} MiB",
          flush=True)


def run(args: argparse.Namespace) -> int:
    big_bytes = args.big_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="bucket-growth-"))
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    run_id = os.urandom(4).hex()
    prefix = f"bench/bucket-growth-{run_id}/"
    symbol = unique_symbol("BG")
    written: list[tuple[str, str | None]] = []  # (key, version id) of every object put
    print(f"[bucket-growth] one {args.big_mib:,} MiB object, then {args.uploads:,} CSV uploads of {args.ticks} "
          f"ticks ({symbol}); emulator temp files in {tmpdir}", flush=True)
    env = {"TMPDIR": str(tmpdir), "MAX_OBJECT_BYTES": str(big_bytes - 1)}
    try:
        state = work / "state" if args.keep_state else None
        with running_local_stack(work / "localrun.log", extra_env=env, state_dir=state) as stack:
            s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                              aws_access_key_id="testing", aws_secret_access_key="testing")
            pid = emulator_pid(stack)
            try:
                with Sampler(pid, str(tmpdir), args.sample_seconds) as sampler:
                    idle = sampler.begin("idle stack (2 s)")
                    time.sleep(2)
                    sampler.end(idle)

                    big = sampler.begin(f"{args.big_mib:,} MiB object put")
                    key = prefix + "blob.bin"
                    put = s3.put_object(Bucket=stack.bucket, Key=key, Body=SyntheticObject(big_bytes),
                                        ContentLength=big_bytes, ContentType="application/octet-stream")
                    version = real_version(put.get("VersionId"))
                    written.append((key, version))
                    big_id = object_ingestion_id(stack.bucket, key, version or put["ETag"].strip('"'))
                    status = wait_for(lambda: _finished(stack, big_id), args.timeout, "the big object's ingestion")
                    sampler.end(big)
                    print(f"    the big object's ingestion: {status}", flush=True)

                    small = sampler.begin(f"{args.uploads:,} uploads → bars ready")
                    uploaded_s = upload_paced(stack, s3, prefix, symbol, args, written)
                    expected = args.uploads * args.ticks
                    wait_for(lambda: _bars_ready(stack, symbol, expected), args.timeout,
                             f"{expected:,} one-minute bars of {symbol}", interval=1.0)
                    sampler.end(small)
                    print(f"    {args.uploads:,} uploads took {uploaded_s:.1f}s; all {expected:,} bars ready "
                          f"{small.seconds:.1f}s after the first", flush=True)
                lost = dead_lettered_events(stack)
                if lost:
                    print(f"    WARNING: the local driver dead-lettered {lost} event(s)", flush=True)
                if state is not None:
                    kept = sum(p.stat().st_size for p in state.rglob("*") if p.is_file())
                    print(f"    the kept state ({state}): {kept / 2**20:,.0f} MiB on disk", flush=True)
                print("emulator (python -m localrun.emulator), per phase:")
                for phase in sampler.phases:
                    print_phase(phase, sampler.hwm_resettable)
            finally:
                _delete(s3, stack.bucket, written)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def upload_paced(stack: LocalStack, s3: Any, prefix: str, symbol: str, args: argparse.Namespace,
                 written: list[tuple[str, str | None]]) -> float:
    """Put the small files, at most --window of them not yet ingested (read from the table, not through the
    API, whose status route asks S3 too); returns the seconds the uploads took.

    Paced so that the phase measures the emulator with a growing bucket, not a backlog of waiting events."""
    client = boto3.client("dynamodb", endpoint_url=stack.endpoint_url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    store = DynamoStateStore(client, resource_names("dev")["TABLE_NAME"])
    started = time.monotonic()
    pending: list[str] = []
    deadline = started + args.timeout
    for i in range(args.uploads):
        while len(pending) >= args.window:
            found = store.get_ingestion_metas(pending)
            pending = [x for x in pending if x not in found or found[x].status is Status.SCANNING]
            if len(pending) >= args.window:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uploads not ingested within {args.timeout:.0f}s: {pending}")
                time.sleep(0.05)
        key = f"{prefix}small-{i:05d}.csv"
        put = s3.put_object(Bucket=stack.bucket, Key=key, ContentType="text/csv",
                            Body=small_csv(symbol, i, args.ticks))
        version = real_version(put.get("VersionId"))
        written.append((key, version))
        pending.append(object_ingestion_id(stack.bucket, key, version or put["ETag"].strip('"')))
    return time.monotonic() - started


def dead_lettered_events(stack: LocalStack) -> int:
    """Events the local driver gave up on (see upload_paced): a figure taken with some is not comparable."""
    sqs = boto3.client("sqs", endpoint_url=stack.endpoint_url, region_name=AWS_ENV["AWS_DEFAULT_REGION"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    url = sqs.get_queue_url(QueueName=events_queue_name(Settings(stage="dev")) + "-dlq")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _finished(stack: LocalStack, ingestion_id: str) -> str | None:
    resp = stack.ingestion(ingestion_id)
    if resp.status != 200:
        return None
    doc = resp.json()
    return None if doc["status"] in ("scanning", "queued", "processing") else f"{doc['status']} ({doc.get('errors')})"


def _bars_ready(stack: LocalStack, symbol: str, expected: int) -> bool:
    bars = stack.bars(symbol, "1m")
    return len(bars) == expected and sum(int(b["trades"]) for b in bars) == expected


def _delete(s3: Any, bucket: str, written: list[tuple[str, str | None]]) -> None:
    """Every version put, by its id (no listing: a listing is what copies every object in moto)."""
    objects = [{"Key": key, **({"VersionId": version} if version else {})} for key, version in written]
    for i in range(0, len(objects), 1000):
        try:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": objects[i : i + 1000], "Quiet": True})
        except Exception as exc:  # the stack is stopped next; its state is in memory anyway
            print(f"    could not delete the objects: {exc}", flush=True)
            return


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big object in MiB (default 1024)")
    parser.add_argument("--uploads", type=int, default=500, help="small CSV files uploaded (default 500)")
    parser.add_argument("--ticks", type=int, default=3, help="ticks per small file (default 3)")
    parser.add_argument("--window", type=int, default=2,
                        help="small files uploaded but not yet ingested, at most (default 2: DataIngestion's "
                             "workers in the local driver)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for each phase")
    parser.add_argument("--keep-state", action="store_true",
                        help="run the stack keeping its state (as make run does) and report the state folder's size")
    parser.add_argument("--sample-seconds", type=float, default=0.2, help="sampling interval (default 0.2)")
    args = parser.parse_args(argv)
    if args.big_mib < 16 or args.uploads < 1 or args.ticks < 1 or args.window < 1:
        parser.error("--big-mib must be at least 16; --uploads, --ticks and --window at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
