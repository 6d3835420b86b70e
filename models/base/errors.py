"""The pack's own error for problems it detects and explains.

`PackError` is raised for a model, file or setting that cannot be used (a corrupt checkpoint, a failed download, a
file that cannot be written), with a message that names it and says what to do. It is a `RuntimeError`, so code
that catches those keeps working; the command line prints it (and `ValueError`, `FileNotFoundError`) as one line
and exits with 1, while any other exception (a bug, PyTorch's own errors) shows its traceback.
"""

from __future__ import annotations


class PackError(RuntimeError):
    """A problem the pack detected, explained in the message."""
