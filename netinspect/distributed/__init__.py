"""Sharded initialisation under torchrun: every rank builds the model on meta, shards it as FSDP2's
``fully_shard`` does, replays the single-process random stream keeping only its own rows, and
writes its shards (a torch.distributed.checkpoint directory, or safetensors shards and an index).

``launch`` is torch-free (the command line asks whether it runs under torchrun before importing
torch); ``job`` runs the whole command on a rank; ``group`` holds the collectives and the agreement
on failure; ``meta``, ``layout``, ``replay``, ``report`` and ``save`` are its steps.
"""

from .launch import LAUNCH_VARS, Launch, launched

__all__ = ["LAUNCH_VARS", "Launch", "launched"]
