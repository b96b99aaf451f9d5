"""Peak memory of ingestion and processing for hostile files: decompression bombs and endless lines.

Each case runs in a fresh process, on moto in-process with the stage's settings (optionally changed):
the file is built (streamed, never held inflated), uploaded, then DataIngestion's use case scans it and
DataProcessor's processes whatever it queued. Printed per case: what became of the file, the queue messages
it made, the seconds taken, and the growth of the process's peak RSS (ru_maxrss) over the peak before the
step, for the scan and for the processing.

Usage: python scripts/bombs.py          (part of `make bench`)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20
NO_RATIO = {"GZIP_MAX_RATIO": str(10**9)}  # the ratio guard off: only the line and size caps remain


def gzip_of(block: bytes, repeat: int, head: bytes = b"") -> bytes:
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(head)] + [deflate.compress(block) for _ in range(repeat)]
    return b"".join(parts) + deflate.flush()


def normal_csv_gz() -> bytes:
    rows = (f"ESU4,{5500 + (i % 400) * 0.25},{1 + i % 7},{1_719_792_000 + i // 10}.{i % 10}\n"
            for i in range(1_000_000))
    deflate = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [deflate.compress(b"symbol,price,volume,timestamp\n")]
    batch: list[str] = []
    for row in rows:
        batch.append(row)
        if len(batch) == 10_000:
            parts.append(deflate.compress("".join(batch).encode()))
            batch = []
    return b"".join(parts) + deflate.flush()


# name -> (what it is, key, builder, environment overrides)
CASES: dict[str, tuple[str, str, Callable[[], bytes], dict[str, str]]] = {
    "spaces-2gib": ("2 MB .csv.gz inflating to 2 GiB of spaces, no newline", "bomb/spaces.csv.gz",
                    lambda: gzip_of(b" " * MIB, 2048), {}),
    "spaces-2gib-no-ratio": ("the same, ratio guard off", "bomb/spaces-nr.csv.gz",
                             lambda: gzip_of(b" " * MIB, 2048), NO_RATIO),
    "spaces-2gib-ndjson-no-ratio": ("2 GiB of spaces as one NDJSON line, ratio guard off", "bomb/spaces.ndjson.gz",
                                    lambda: gzip_of(b" " * MIB, 2048, b'{"symbol":"A","price":1,"volume":1}\n'),
                                    NO_RATIO),
    "newlines-256mib": ("261 kB .ndjson.gz inflating to 256 MiB of newlines", "bomb/newlines.ndjson.gz",
                        lambda: gzip_of(b"\n" * MIB, 256), {}),
    "newlines-256mib-no-ratio": ("the same, ratio guard off", "bomb/newlines-nr.ndjson.gz",
                                 lambda: gzip_of(b"\n" * MIB, 256), NO_RATIO),
    "normal-1m-rows": ("for scale: an ordinary .csv.gz of 1,000,000 rows", "normal/rows.csv.gz", normal_csv_gz, {}),
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(name: str) -> dict[str, Any]:
    """In this (fresh) process: upload the case's file, scan it, process what it queued."""
    what, key, build, overrides = CASES[name]
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"]["dev"]["environment_variables"]
    os.environ.update({**config, **overrides, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    os.environ.pop("AWS_ENDPOINT_URL", None)
    sys.path.insert(0, str(ROOT))
    import boto3
    from moto import mock_aws

    from chalicelib.bootstrap import build_use_cases
    from chalicelib.observability import logger
    from chalicelib.settings import Settings
    from localrun.provision import provision

    logger.setLevel("ERROR")
    with mock_aws():
        settings = Settings.from_env(os.environ)
        names = provision(settings, {}, boto3.session.Session())
        pipeline = build_use_cases(settings)
        data = build()
        version = boto3.client("s3").put_object(Bucket=settings.bucket_name, Key=key, Body=data)["VersionId"]
        del data
        before = peak_mib()
        started = time.monotonic()
        planned = pipeline.ingest_object(settings.bucket_name, key, version)
        scan_s, scan_peak = time.monotonic() - started, peak_mib()
        sqs = boto3.client("sqs")
        messages = 0
        started = time.monotonic()
        while True:
            batch = sqs.receive_message(QueueUrl=names["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                break
            messages += len(batch)
            outcome = pipeline.process_batch([(m["MessageId"], m["Body"]) for m in batch])
            assert not outcome.failed_message_ids
            sqs.delete_message_batch(QueueUrl=names["queue_url"], Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])
        process_s, process_peak = time.monotonic() - started, peak_mib()
        status = pipeline.ingestion_status(planned["ingestion_id"])
    return {"case": name, "what": what,
            "status": status["status"], "accepted": status["accepted"], "rejected": status["rejected"],
            "reason": (status["errors"] or [{"reason": ""}])[0]["reason"][:90], "messages": messages,
            "scan_s": round(scan_s, 1), "process_s": round(process_s, 1), "baseline_mib": round(before),
            "scan_peak_growth_mib": round(scan_peak - before, 1),
            "process_peak_growth_mib": round(process_peak - scan_peak, 1)}


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--case":
        print(json.dumps(run_case(argv[1])))
        return 0
    print("\nhostile files: peak RSS growth of the scan (DataIngestion) and of processing (DataProcessor)")
    print(f"{'case':<30} {'status':<9} {'msgs':>5} {'scan s':>7} {'scan MiB':>9} {'proc MiB':>9}  reason / what")
    for name in CASES:
        done = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True,
                              cwd=ROOT, timeout=1200)
        if done.returncode != 0:
            print(f"{name:<30} FAILED: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
            return 1
        r = json.loads(done.stdout.strip().splitlines()[-1])
        detail = r["reason"] or f"accepted {r['accepted']}, rejected {r['rejected']}"
        print(f"{name:<30} {r['status']:<9} {r['messages']:>5} {r['scan_s']:>7} {r['scan_peak_growth_mib']:>9} "
              f"{r['process_peak_growth_mib']:>9}  {r['what']}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
