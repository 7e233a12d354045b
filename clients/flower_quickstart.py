"""A Flower client written the way Flower's PyTorch quickstart writes one — on digits.

Everything above the "BDFL adapter" line follows the structure of Flower's
``quickstart-pytorch`` example (``Net``, ``get_weights`` / ``set_weights`` through the
``state_dict``, ``train``, ``test``, ``class FlowerClient(NumPyClient)``), only with an
8x8 single-channel input instead of CIFAR-10 and an in-memory data set instead of
``flwr_datasets``. It knows nothing about BDFL.

The two functions below the line are all BDFL needs to run it: ``load_dataset`` and
``make_client``. Nothing in ``FlowerClient`` had to change.
"""

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from flwr.client import NumPyClient
from torch.utils.data import DataLoader, Dataset

DEVICE = torch.device("cpu")


class Net(nn.Module):
    """Model (simple CNN adapted from 'PyTorch: A 60 Minute Blitz', resized for 8x8 digits)"""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(6, 16, 3, padding=1)
        self.fc1 = nn.Linear(16 * 2 * 2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 16 * 2 * 2)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class DigitsDataset(Dataset):
    """Yields {"img": tensor, "label": int} like the quickstart's Hugging Face partitions."""

    def __init__(self, X, y):
        self.X = torch.tensor(X, dtype=torch.float32)
        self.y = torch.tensor(y, dtype=torch.long)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"img": self.X[i], "label": self.y[i]}


def get_weights(net):
    return [val.cpu().numpy() for _, val in net.state_dict().items()]


def set_weights(net, parameters):
    params_dict = zip(net.state_dict().keys(), parameters)
    state_dict = OrderedDict({k: torch.tensor(v) for k, v in params_dict})
    net.load_state_dict(state_dict, strict=True)


def train(net, trainloader, epochs, device, lr=0.01):
    """Train the model on the training set."""
    net.to(device)  # move model to GPU if available
    criterion = torch.nn.CrossEntropyLoss().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    running_loss = 0.0
    for _ in range(epochs):
        for batch in trainloader:
            images = batch["img"]
            labels = batch["label"]
            optimizer.zero_grad()
            loss = criterion(net(images.to(device)), labels.to(device))
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
    avg_trainloss = running_loss / max(1, len(trainloader) * epochs)
    return avg_trainloss


def test(net, testloader, device):
    """Validate the model on the test set."""
    net.to(device)
    criterion = torch.nn.CrossEntropyLoss()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for batch in testloader:
            images = batch["img"].to(device)
            labels = batch["label"].to(device)
            outputs = net(images)
            loss += criterion(outputs, labels).item() * len(labels)
            correct += (torch.max(outputs.data, 1)[1] == labels).sum().item()
    accuracy = correct / max(1, len(testloader.dataset))
    loss = loss / max(1, len(testloader.dataset))
    return loss, accuracy


class FlowerClient(NumPyClient):
    def __init__(self, net, trainloader, valloader, local_epochs):
        self.net = net
        self.trainloader = trainloader
        self.valloader = valloader
        self.local_epochs = local_epochs
        self.device = DEVICE
        self.net.to(self.device)

    def get_parameters(self, config):
        return get_weights(self.net)

    def fit(self, parameters, config):
        set_weights(self.net, parameters)
        train_loss = train(
            self.net,
            self.trainloader,
            self.local_epochs,
            self.device,
        )
        return (
            get_weights(self.net),
            len(self.trainloader.dataset),
            {"train_loss": train_loss},
        )

    def evaluate(self, parameters, config):
        set_weights(self.net, parameters)
        loss, accuracy = test(self.net, self.valloader, self.device)
        return loss, len(self.valloader.dataset), {"accuracy": accuracy}


# ----------------------------------------------------------------------------- #
# BDFL adapter: the only BDFL-specific code in this file.
# ----------------------------------------------------------------------------- #


def load_dataset(data_dir=None):
    from bdfl.learning.data import load_digits

    return load_digits()


def make_client(train, val, *, seed, hparams=None):
    hparams = dict(hparams or {})
    torch.set_num_threads(1)
    # Determinism without touching FlowerClient: seed the model init and the shuffling
    # generator of this client's DataLoader (same seed -> same parameters after fit).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = Net()
    generator = torch.Generator().manual_seed(seed)
    trainloader = DataLoader(
        DigitsDataset(*train), batch_size=int(hparams.get("batch_size", 32)), shuffle=True, generator=generator
    )
    valloader = DataLoader(DigitsDataset(*val), batch_size=256)
    return FlowerClient(net, trainloader, valloader, int(hparams.get("local_epochs", 1)))

