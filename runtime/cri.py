"""Asking the container runtime which pods are alive, through the CRI (`netc gc`).

The kubelet's own view: `ListPodSandbox` on containerd's (or CRI-O's)
socket lists every pod sandbox the runtime knows, ready or not; CNI calls
name a sandbox by its ID (CNI_CONTAINERID).  A sandbox being set up is in
the list before its CNI ADD runs, so its attachment is never taken for dead.
The gRPC client is the optional `cri` extra (`pip install netc[cri]`).
"""

from __future__ import annotations

from compiler.errors import Code, NetcError

DEFAULT_SOCKET = "/run/containerd/containerd.sock"


def alive_sandboxes(socket: str, timeout: float = 10.0) -> set[str]:
    """The IDs of every pod sandbox the runtime behind `socket` knows."""
    try:
        import grpc
        from cri_api.v1 import api_pb2 as cri
        from cri_api.v1.api_pb2_grpc import RuntimeServiceStub
    except ImportError:
        raise NetcError(
            "asking the runtime needs the CRI client: pip install 'netc[cri]'", Code.INTERNAL
        ) from None
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = RuntimeServiceStub(channel)  # type: ignore[no-untyped-call]  # generated gRPC code
        try:
            reply = stub.ListPodSandbox(cri.ListPodSandboxRequest(), timeout=timeout)
        except grpc.RpcError as error:
            raise NetcError(
                f"cannot list the pods of the runtime at {socket}: {error.details() or error}",
                Code.IO_FAILURE,
            ) from None
    return {item.id for item in reply.items}
