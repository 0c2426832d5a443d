#!/usr/bin/env python3
"""`helm lint`, `helm template`, `helm install` and `helm upgrade` without the helm CLI.

Runs Helm's own Go code (v4, through helm-python-sdk's libhelm_c), so the findings, the
rendered YAML and the releases are Helm's. Only what Cairn's checks need is here:

    tools/helm.py lint charts/cairn [-f values.yaml]... [--set a.b=c]... [--strict]
    tools/helm.py template charts/cairn [--name R] [--namespace NS] [-f values.yaml]...
                          [--set a.b=c]... [--set-string a=b]... [--include-crds]
                          [--output yaml|json|notes]
    tools/helm.py install charts/cairn --name R --namespace NS [--create-namespace]
                          [--kubeconfig FILE] [-f values.yaml]... [--set a.b=c]...
    tools/helm.py upgrade charts/cairn --name R --namespace NS [--kubeconfig FILE] [-f ...]...

Install the SDK with `pip install helm-python-sdk==0.2.2` (./test.sh puts it in .tools/venv).
Exit status: 0 on success, 1 on lint errors (warnings too with --strict) or a render failure,
2 on bad usage or a missing SDK.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

SEVERITIES = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def load_sdk():
    try:
        import helm_python  # noqa: PLC0415 (a missing SDK gets a clear message below)
    except ImportError:
        sys.stderr.write(
            "tools/helm.py: the helm-python-sdk package is missing "
            "(pip install helm-python-sdk==0.2.2, or run ./test.sh)\n"
        )
        sys.exit(2)
    return helm_python


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Later values win; maps merge key by key, as Helm merges -f files and --set."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def user_values(helm, args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise UsageError(f"reading values file {path}: {err.strerror}") from err
        values = merge(values, helm.values_from_yaml(text) or {})
    for expression in args.set:
        values = merge(values, helm.parse_set_string(expression))
    for expression in args.set_string:
        values = merge(values, helm.parse_set_string_values(expression))
    return values


class UsageError(Exception):
    """Bad input from the command line."""


def lint(helm, args: argparse.Namespace) -> int:
    report = helm.lint(
        args.chart,
        user_values(helm, args) or None,
        strict=args.strict,
        namespace=args.namespace,
        kube_version=args.kube_version,
    )
    worst = 0
    for message in report.get("messages") or []:
        severity = int(message.get("severity", 0))
        worst = max(worst, severity)
        name = SEVERITIES.get(severity, str(severity))
        print(f"[{name}] {message.get('path', '')}: {message.get('error', '')}")
    errors = report.get("errors") or []
    for error in errors:
        print(f"[ERROR] {error}")
    failed = bool(errors) or worst >= 3 or (args.strict and worst >= 2)
    linted = report.get("total_charts_linted", 0)
    print(f"{linted} chart(s) linted, {'failed' if failed else 'no failures'}")
    return 1 if failed else 0


def is_blank(manifest: str) -> bool:
    """True when a rendered template holds no YAML document (only comments or whitespace)."""
    return all(
        not line.strip() or line.lstrip().startswith("#") or line.strip() == "---"
        for line in manifest.splitlines()
    )


DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)


def as_json(helm, documents: list[tuple[str, str]]) -> str:
    """The documents as a JSON list of {"source", "object"}, parsed by Helm's YAML reader."""
    objects = []
    for source, text in documents:
        for part in DOCUMENT_SEPARATOR.split(text):
            if is_blank(part):
                continue
            parsed = helm.values_from_yaml(part)
            if parsed:
                objects.append({"source": source, "object": parsed})
    return json.dumps(objects, indent=1) + "\n"


def template(helm, args: argparse.Namespace) -> int:
    with helm.Chart.load(args.chart) as chart:
        documents: list[tuple[str, str]] = []
        if args.include_crds:
            for crd in sorted(chart.crds, key=lambda c: c["filename"]):
                documents.append((crd["filename"], crd["data"]))
        rendered = chart.render(
            user_values(helm, args),
            name=args.name,
            namespace=args.namespace,
            is_install=True,
        )
    if args.output == "notes":
        sys.stdout.write("".join(text for path, text in rendered.items() if path.endswith("NOTES.txt")))
        return 0
    for path in sorted(rendered):
        if path.endswith("NOTES.txt") or is_blank(rendered[path]):
            continue
        documents.append((path, rendered[path]))
    if args.output == "json":
        sys.stdout.write(as_json(helm, documents))
        return 0
    out = []
    for source, text in documents:
        body = text.strip("\n")
        if body.startswith("---"):
            body = body[3:].lstrip("\n")
        out.append(f"---\n# Source: {source}\n{body}\n")
    sys.stdout.write("".join(out))
    return 0


def release(helm, args: argparse.Namespace) -> int:
    """Installs or upgrades release `args.name` (KUBECONFIG or --kubeconfig picks the cluster)."""
    values = user_values(helm, args)
    with helm.Config(kubeconfig_path=args.kubeconfig, namespace=args.namespace) as config:
        with helm.Chart.load(args.chart) as chart:
            if args.command == "install":
                result = config.install(
                    chart,
                    args.name,
                    values,
                    namespace=args.namespace,
                    create_namespace=args.create_namespace,
                    timeout=args.timeout,
                )
            else:
                result = config.upgrade(
                    chart, args.name, values, namespace=args.namespace, timeout=args.timeout
                )
    print(
        f"release {result.get('name', args.name)} revision {result.get('revision', '?')}: "
        f"{result.get('status', 'unknown')}"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="tools/helm.py", description=__doc__.splitlines()[0])
    commands = top.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("lint", "lint a chart"),
        ("template", "render a chart offline"),
        ("install", "install a release into the cluster"),
        ("upgrade", "upgrade a release in the cluster"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("chart", help="chart directory or .tgz")
        sub.add_argument("-f", "--values", action="append", default=[], metavar="FILE")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
        sub.add_argument("--set-string", action="append", default=[], metavar="KEY=VALUE")
        sub.add_argument("-n", "--namespace", default="default")
        if name == "lint":
            sub.add_argument("--strict", action="store_true", help="fail on warnings too")
            sub.add_argument("--kube-version", default=None, help="e.g. v1.33.0")
        elif name == "template":
            sub.add_argument("--name", default="release-name", help="release name")
            sub.add_argument("--include-crds", action="store_true")
            sub.add_argument("-o", "--output", choices=["yaml", "json", "notes"], default="yaml")
        else:
            sub.add_argument("--name", required=True, help="release name")
            sub.add_argument("--kubeconfig", default=None, help="default: KUBECONFIG")
            sub.add_argument("--timeout", type=int, default=300, help="seconds")
            if name == "install":
                sub.add_argument("--create-namespace", action="store_true")
    return top


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    helm = load_sdk()
    try:
        if args.command == "lint":
            return lint(helm, args)
        if args.command == "template":
            return template(helm, args)
        return release(helm, args)
    except UsageError as err:
        sys.stderr.write(f"tools/helm.py: {err}\n")
        return 2
    except helm.HelmError as err:
        sys.stderr.write(f"tools/helm.py {args.command}: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
