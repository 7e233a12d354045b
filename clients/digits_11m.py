"""Task: digits with an 11,001,055-parameter MLP (64-3279-3279-10; see ``clients.digits_wide``)."""

from clients.digits_wide import task_for_width

WIDTH = 3279
load_dataset, make_client = task_for_width(WIDTH)
