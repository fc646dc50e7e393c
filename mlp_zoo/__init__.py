"""mlp-zoo's framework-neutral internals and its command line, under one name so that an installed zoo adds no
generic top-level package (``tools``, ``training``, ...) beside a user's own. The models are imported as
``models_pytorch`` and ``models_jittor``, the converter as ``weights_convert``.

- ``model_specs``: variant tables, published figures, each release's ``pretrained_cfg``
- ``image_data``: image decoding, eval/training transforms, folder listing, worker-process streaming, label lists
- ``training``: the fine-tuning engine under ``mlp-zoo finetune``
- ``jittor_support``: Jittor's runtime set-up, PyTorch-semantics optimisers, the CPU kernels
- ``tools``: one module per command of ``mlp-zoo`` (``cli.py``)
"""
__version__ = "0.1.0"
