"""Imported once by the forkserver that starts sweep workers, so that each worker forks
with torch, the trainer and scikit-learn already loaded (instead of importing them anew).

Nothing here runs torch code: the server must not start thread pools before it forks.
"""

from __future__ import annotations

import signal

# Ctrl-C reaches the whole process group: the forkserver (importing, below) and the
# workers it forks (they inherit this) ignore it, and the parent stops them.
signal.signal(signal.SIGINT, signal.SIG_IGN)

import sklearn.model_selection  # noqa: E402, F401
import torch._dynamo  # noqa: E402, F401  (imported by the first optimizer step otherwise: ~1 s)

import specnet.trainer  # noqa: E402, F401
