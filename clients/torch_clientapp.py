"""A Flower ``ClientApp`` written the way Flower's current quickstart-pytorch writes one
(the Message API, flwr >= 1.21) — on digits.

The ``task.py`` part (``Net``, ``load_data``, ``train``, ``test``; the model, data set and
loops are imported from ``clients/flower_quickstart.py``) and the ``client_app.py``
part (``app = ClientApp()``, ``@app.train()`` / ``@app.evaluate()`` reading
``msg.content["arrays"]`` and ``msg.content["config"]["lr"]``, replying with an
``ArrayRecord`` and a ``MetricRecord`` with ``"num-examples"``) follow the quickstart; only
the model is resized for 8x8 digits and ``load_data`` takes this peer's BDFL shard
(``bdfl.learning.flower.load_partition``) where the quickstart calls
``FederatedDataset(...).load_partition``: BDFL decides the shards.

The ``make_client`` below the "BDFL adapter" line is all BDFL needs to run it, and
``TASK_DEFAULTS`` its learning rate: BDFL sends ``task.learning_rate`` as ``lr`` (library default
0.05, its SGD clients' rate), at which Adam does not learn this model; the quickstart's own 0.01
is taken unless a config or ``--set`` gives another (docs/tasks.md).
"""

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from torch.utils.data import DataLoader

from bdfl.learning.flower import ClientAppClient, load_partition
from clients.flower_quickstart import DigitsDataset, Net
from clients.flower_quickstart import test as test_fn
from clients.flower_quickstart import train as quickstart_train

# ----------------------------------------------------------------------------- #
# task.py (``Net``, the data set and the train/test loops are clients/flower_quickstart.py's)
# ----------------------------------------------------------------------------- #


def load_data(partition_id: int, num_partitions: int, batch_size: int):
    """Load partition data."""
    (X_train, y_train), (X_test, y_test) = load_partition(partition_id)
    trainloader = DataLoader(DigitsDataset(X_train, y_train), batch_size=batch_size, shuffle=True)
    testloader = DataLoader(DigitsDataset(X_test, y_test), batch_size=batch_size)
    return trainloader, testloader


def train_fn(net, trainloader, epochs, lr, device):
    """Train the model on the training set."""
    return quickstart_train(net, trainloader, epochs, device, lr=lr)


# ----------------------------------------------------------------------------- #
# client_app.py
# ----------------------------------------------------------------------------- #

app = ClientApp()


@app.train()
def train(msg: Message, context: Context):
    """Train the model on local data."""

    # Load the model and initialize it with the received weights
    model = Net()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    device = torch.device("cpu")
    model.to(device)

    # Load the data
    partition_id = context.node_config["partition-id"]
    num_partitions = context.node_config["num-partitions"]
    batch_size = context.run_config["batch-size"]
    trainloader, _ = load_data(partition_id, num_partitions, batch_size)

    # Call the training function
    train_loss = train_fn(
        model,
        trainloader,
        context.run_config["local-epochs"],
        msg.content["config"]["lr"],
        device,
    )

    # Construct and return reply Message
    model_record = ArrayRecord(model.state_dict())
    metrics = {
        "train_loss": train_loss,
        "num-examples": len(trainloader.dataset),
    }
    metric_record = MetricRecord(metrics)
    content = RecordDict({"arrays": model_record, "metrics": metric_record})
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context):
    """Evaluate the model on local data."""

    # Load the model and initialize it with the received weights
    model = Net()
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    device = torch.device("cpu")
    model.to(device)

    # Load the data
    partition_id = context.node_config["partition-id"]
    num_partitions = context.node_config["num-partitions"]
    batch_size = context.run_config["batch-size"]
    _, valloader = load_data(partition_id, num_partitions, batch_size)

    # Call the evaluation function
    eval_loss, eval_acc = test_fn(model, valloader, device)

    # Construct and return reply Message
    metrics = {
        "eval_loss": eval_loss,
        "eval_acc": eval_acc,
        "num-examples": len(valloader.dataset),
    }
    metric_record = MetricRecord(metrics)
    content = RecordDict({"metrics": metric_record})
    return Message(content=content, reply_to=msg)


# ----------------------------------------------------------------------------- #
# BDFL adapter: the only BDFL-specific code in this file.
# ----------------------------------------------------------------------------- #


#: the quickstart's own rate (Adam); a config or --set task.learning_rate=... still wins
TASK_DEFAULTS = {"learning_rate": 0.01}


def load_dataset(data_dir=None):
    from bdfl.learning.data import load_digits

    return load_digits()


def make_client(train, val, *, seed, hparams=None):
    hparams = dict(hparams or {})
    torch.set_num_threads(1)
    run_config = {"local-epochs": int(hparams.get("local_epochs", 1)), "batch-size": int(hparams.get("batch_size", 32))}
    return ClientAppClient(app, train, val, seed=seed, initial_arrays=lambda: ArrayRecord(Net().state_dict()),
                           run_config=run_config)
