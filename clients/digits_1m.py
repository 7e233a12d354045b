"""Task: digits with a 1,000,567-parameter MLP (64-963-963-10; see ``clients.digits_wide``)."""

from clients.digits_wide import task_for_width

WIDTH = 963
load_dataset, make_client = task_for_width(WIDTH)
