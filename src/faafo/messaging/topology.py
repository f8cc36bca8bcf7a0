"""The queue layout, kept as the original's so its tools still see the same names.

Direct exchange ``tasks``, queue ``normal``, routing key ``normal``; both are
durable and declared by the API *and* the workers (the original declared the
queue only in workers, so tasks published before any worker connected were
dropped). Messages that cannot be processed go to the ``dead`` queue.
"""

from __future__ import annotations

from kombu import Exchange, Queue

TASK_EXCHANGE = Exchange("tasks", type="direct", durable=True)
TASK_QUEUE = Queue("normal", TASK_EXCHANGE, routing_key="normal", durable=True)
DEAD_EXCHANGE = Exchange("tasks.dead", type="direct", durable=True)
DEAD_QUEUE = Queue("dead", DEAD_EXCHANGE, routing_key="dead", durable=True)
