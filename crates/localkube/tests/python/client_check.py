"""The Python `kubernetes` client against localkube: watch with resource_version (and a
410 surfaced as ApiException), exec over WebSocket with an exit code, and the dynamic
client over legacy discovery. Run by tests/suite/python.rs with the kubeconfig, an
expired resourceVersion and the name of a running pod."""

import sys

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream


def main() -> None:
    kubeconfig, expired_rv, pod = sys.argv[1], sys.argv[2], sys.argv[3]
    config.load_kube_config(kubeconfig)
    v1 = client.CoreV1Api()

    cm = v1.create_namespaced_config_map(
        "default", {"metadata": {"name": "py1"}, "data": {"a": "1"}}
    )
    v1.patch_namespaced_config_map("py1", "default", {"data": {"a": "2"}})
    w = watch.Watch()
    seen = []
    for ev in w.stream(
        v1.list_namespaced_config_map,
        "default",
        resource_version=cm.metadata.resource_version,
        timeout_seconds=10,
    ):
        seen.append((ev["type"], ev["object"].metadata.name, ev["object"].data["a"]))
        w.stop()
    assert seen == [("MODIFIED", "py1", "2")], seen

    try:
        for _ in watch.Watch().stream(
            v1.list_namespaced_config_map,
            "default",
            resource_version=expired_rv,
            timeout_seconds=10,
        ):
            pass
        raise AssertionError("a watch from an expired resourceVersion must fail")
    except ApiException as e:
        assert e.status == 410, e

    resp = stream(
        v1.connect_get_namespaced_pod_exec,
        pod,
        "default",
        command=["sh", "-c", "echo from-exec; echo oops >&2; exit 3"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    resp.run_forever(timeout=20)
    out, err = resp.read_stdout(), resp.read_stderr()
    assert out == "from-exec\n", repr(out)
    assert "oops" in err, repr(err)
    assert resp.returncode == 3, resp.returncode

    dyn = dynamic.DynamicClient(client.ApiClient())
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    got = cms.get(name="py1", namespace="default")
    assert got.data.a == "2", got
    jobs = dyn.resources.get(api_version="batch/v1", kind="Job")
    assert jobs.namespaced
    assert len(cms.get(namespace="default", label_selector="missing=x").items) == 0
    print("python client checks passed")


if __name__ == "__main__":
    main()
