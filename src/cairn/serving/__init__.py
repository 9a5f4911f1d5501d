"""``cairn serve``: a model server that is a CLIENT of the registry.

It pulls a version through the SDK, loads it with a safe loader (``loaders``: skops and
ONNX, never a pickle), answers MLflow's scoring protocol (``protocol``, ``app``) and, when
served by alias, follows the alias through the event log and swaps models (``follow``).
It imports the SDK, ``domain`` and ``errors`` only: never the server's layers.
"""
