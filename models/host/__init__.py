"""Host services shared by the command line and the nodes: the device, precision, progress and memory policy
(`policy`), and the C allocator's settings for long runs (`allocator`). The model catalog (which checkpoints and
depth models there are, where they live, how to fetch them) is `models.io.catalog`."""

from .policy import PRECISIONS, Host, get_host, resolve_device, resolve_dtype, set_host

__all__ = ["PRECISIONS", "Host", "get_host", "resolve_device", "resolve_dtype", "set_host"]
