"""Skiff's Kubernetes API through PyPI's `kubernetes` client: a second client beside kubectl.

Run by tests/tests/kube_python.rs as `kube_client.py KUBECONFIG COMMAND [ARGS]`; prints one
JSON object the test checks. The client raises on any answer it cannot parse, which is the
point: it is stricter than kubectl about response fields.
"""

import json
import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NAMESPACE = "default"


def failure(e):
    """What a refused request carried: code, Retry-After and the metav1.Status body."""
    try:
        body = json.loads(e.body)
    except (TypeError, ValueError):
        body = e.body
    headers = e.headers or {}
    return {"code": e.status, "retry_after": headers.get("Retry-After"), "status": body}


def pod(name, annotation=""):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels={"app": "py"},
            annotations={"big": annotation} if annotation else None,
        ),
        spec=client.V1PodSpec(
            containers=[
                client.V1Container(name="main", image="busybox", command=["sleep", "3600"])
            ]
        ),
    )


def flow(core):
    """List nodes and pods, create a pod, watch it to Running, read it back, delete it."""
    nodes = core.list_node()
    pods = core.list_namespaced_pod(NAMESPACE)
    created = core.create_namespaced_pod(NAMESPACE, pod("py-web"))
    phases = []
    running = False
    deadline = time.monotonic() + 90
    version = pods.metadata.resource_version
    while not running and time.monotonic() < deadline:
        stream = watch.Watch().stream(
            core.list_namespaced_pod,
            NAMESPACE,
            resource_version=version,
            field_selector="metadata.name=py-web",
            timeout_seconds=30,
        )
        for event in stream:
            obj = event["object"]
            version = obj.metadata.resource_version
            phases.append((event["type"], obj.status.phase if obj.status else None))
            if obj.status and obj.status.phase == "Running":
                running = True
                break
    read = core.read_namespaced_pod("py-web", NAMESPACE)
    deleted = core.delete_namespaced_pod("py-web", NAMESPACE)
    gone = False
    for _ in range(60):
        try:
            core.read_namespaced_pod("py-web", NAMESPACE)
        except ApiException as e:
            if e.status == 404:
                gone = True
                break
            raise
        time.sleep(1)
    return {
        "nodes": sorted(n.metadata.name for n in nodes.items),
        "list_resource_version": pods.metadata.resource_version,
        "created_uid": created.metadata.uid,
        "watched": phases,
        "running": running,
        "read_phase": read.status.phase,
        "read_uid": read.metadata.uid,
        "delete_answer_kind": type(deleted).__name__,
        "gone": gone,
    }


def oversized(core, size):
    """A pod whose annotation makes the body `size` bytes, then an ordinary list."""
    try:
        core.create_namespaced_pod(NAMESPACE, pod("too-big", "x" * size))
        refused = None
    except ApiException as e:
        refused = failure(e)
    after = core.list_namespaced_pod(NAMESPACE)
    return {"refused": refused, "listed_after": after.metadata.resource_version is not None}


def unavailable():
    """One list with a bounded client timeout, and how long the member took to answer it.

    urllib3 retries a 503 that carries Retry-After (three times by default, sleeping as it
    says), so retries are off here: the time measured is one request's.
    """
    configuration = client.Configuration.get_default_copy()
    configuration.retries = False
    core = client.CoreV1Api(client.ApiClient(configuration))
    start = time.monotonic()
    try:
        core.list_namespaced_pod(NAMESPACE, _request_timeout=60)
        refused = None
    except ApiException as e:
        refused = failure(e)
    return {"refused": refused, "seconds": time.monotonic() - start}


def events(core, count):
    """`count` events from one source about one object: the first refusal, if any."""
    accepted = 0
    for i in range(count):
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"py-spam.{i}"),
            involved_object=client.V1ObjectReference(
                kind="Pod", namespace=NAMESPACE, name="spammed", uid="spammed-uid"
            ),
            reason=f"Spam{i}",
            message=f"event {i}",
            type="Normal",
            source=client.V1EventSource(component="py-spammer", host="py-host"),
        )
        try:
            core.create_namespaced_event(NAMESPACE, event)
            accepted += 1
        except ApiException as e:
            return {"accepted": accepted, "refused": failure(e)}
    return {"accepted": accepted, "refused": None}


def main():
    kubeconfig, command, *args = sys.argv[1:]
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    if command == "flow":
        result = flow(core)
    elif command == "oversized":
        result = oversized(core, int(args[0]))
    elif command == "unavailable":
        result = unavailable()
    elif command == "events":
        result = events(core, int(args[0]))
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
