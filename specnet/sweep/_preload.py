"""Imported once by the forkserver that starts sweep workers, so that each worker forks
with torch, the trainer and scikit-learn already loaded (instead of importing them anew).

Nothing here runs torch code: the server must not start thread pools before it forks.
"""

from __future__ import annotations

import sklearn.model_selection  # noqa: F401
import torch._dynamo  # noqa: F401  (imported by the first optimizer step otherwise: ~1 s)

import specnet.trainer  # noqa: F401
