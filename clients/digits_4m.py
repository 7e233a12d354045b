"""Task: digits with a 4,002,567-parameter MLP (64-1963-1963-10; see ``clients.digits_wide``)."""

from clients.digits_wide import task_for_width

WIDTH = 1963
load_dataset, make_client = task_for_width(WIDTH)
