#!/usr/bin/env python3
"""An orchestrator's client of Cairn's public gRPC API (docs/API.md), with grpcio from PyPI.

Creates a Backup in its own namespace, watches it to its final status printing the progress,
and shows that a backup in another namespace is refused. The Python stubs are generated from
proto/cairn/api/v1 with grpcio-tools at start (into a temporary directory).

    pip install grpcio grpcio-tools
    python3 backup_client.py --data-dir cairn-data --token "$(kubectl create token orch -n team-a)" \\
        --namespace team-a --policy db-files --method files --name db-2 --other-namespace team-b

The address and CA come from <data-dir>/api/endpoint and <data-dir>/api/ca.crt (written by
`cairnctl up`), or --endpoint and --ca. Exit status 0 when the backup completed and the other
namespace was refused; the last line printed is a JSON summary.
"""

import argparse
import importlib
import json
import os
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTOS = ["common", "backup"]


def load_stubs():
    """Generates and imports the cairn.api.v1 messages and stubs."""
    out = tempfile.mkdtemp(prefix="cairn-api-py-")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    for name in PROTOS:
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            f"cairn/api/v1/{name}.proto",
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {name}.proto")
    sys.path.insert(0, out)
    pb = importlib.import_module("cairn.api.v1.backup_pb2")
    grpc_pb = importlib.import_module("cairn.api.v1.backup_pb2_grpc")
    return pb, grpc_pb


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--endpoint")
    parser.add_argument("--ca")
    parser.add_argument("--token", default=os.environ.get("CAIRN_API_TOKEN", ""))
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--other-namespace", required=True)
    parser.add_argument("--policy", required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()

    endpoint = args.endpoint or open(os.path.join(args.data_dir, "api", "endpoint")).read().strip()
    ca_path = args.ca or os.path.join(args.data_dir, "api", "ca.crt")
    with open(ca_path, "rb") as f:
        ca = f.read()
    pb, grpc_pb = load_stubs()

    credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=ca),
        grpc.access_token_call_credentials(args.token),
    )
    # The server certificate names localhost (standalone mode).
    channel = grpc.secure_channel(
        endpoint, credentials, options=[("grpc.ssl_target_name_override", "localhost")]
    )
    backups = grpc_pb.BackupServiceStub(channel)

    def request(namespace, name):
        return pb.CreateBackupRequest(
            namespace=namespace,
            name=name,
            spec=pb.BackupSpec(backup_policy_name=args.policy, backup_method=args.method),
        )

    # Another namespace: refused by the cluster's RBAC.
    refused = ""
    try:
        backups.CreateBackup(request(args.other_namespace, args.name))
    except grpc.RpcError as err:
        refused = err.code().name
        print(f"{args.other_namespace}: {err.code().name}: {err.details()}")

    started = time.monotonic()
    backups.CreateBackup(request(args.namespace, args.name))
    events = 0
    phase = ""
    done = 0
    watch = pb.WatchBackupRequest(namespace=args.namespace, name=args.name)
    for event in backups.WatchBackup(watch, timeout=args.timeout):
        events += 1
        status = event.backup.status
        phase = status.phase
        if status.HasField("progress"):
            p = status.progress
            done = p.bytes_done
            total = p.bytes_total if p.HasField("bytes_total") else None
            eta = p.eta_seconds if p.HasField("eta_seconds") else None
            print(f"{phase}: {done} of {total} bytes, eta {eta}s")
        else:
            print(phase or "(no phase yet)")
        if event.final:
            break
    summary = {
        "phase": phase,
        "bytes_done": done,
        "events": events,
        "seconds": round(time.monotonic() - started, 3),
        "other_namespace": refused,
    }
    print(json.dumps(summary))
    return 0 if phase == "Completed" and refused == "PERMISSION_DENIED" else 1


if __name__ == "__main__":
    sys.exit(main())
